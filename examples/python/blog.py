"""A blog with users and posts, on Cormorant's Python models.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python examples/python/blog.py
"""

import asyncio
import os
from datetime import datetime

import cormorant as cm


class User(cm.Model, table="blog_users"):
    id: int = cm.column(primary_key=True)
    name: str = cm.column(max_length=30, unique=True)
    email: str | None = None


class Post(cm.Model, table="blog_posts"):
    id: int = cm.column(primary_key=True)
    user_id: int = cm.column(references=User, on_delete="cascade", index=True)
    title: str
    likes: int = 0
    published: datetime = cm.sql("now()")


async def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    db = await cm.connect(url, min_size=1, max_size=4)
    await db.drop_tables(User, Post, if_exists=True)
    await db.create_tables(User, Post)

    ada = await User.create(name="ada", email="ada@example.com")
    bob = User(name="bob")
    await bob.save()

    async with db.transaction():  # all three posts, or none
        await Post.bulk_create([
            Post(user_id=ada.id, title="Engines", likes=12),
            Post(user_id=ada.id, title="Notes on the analytical engine", likes=30),
            Post(user_id=bob.id, title="Hello"),
        ])

    # Chains and Django-style lookups; both return list[Post].
    popular = await Post.select().where(Post.likes >= 10).order_by(Post.likes.desc())
    print("popular:", [p.title for p in popular])
    print("ada's:", [p.title for p in await Post.filter(user_id=ada.id, title__icontains="engine")])

    # A join and an aggregate, as dicts.
    per_user = await (Post.select(User.name, cm.count().label("posts"), cm.sum(Post.likes).label("likes"))
                      .join(User).group_by(User.name).order_by(User.name).dicts())
    for row in per_user:
        print(f"{row['name']}: {row['posts']} posts, {row['likes']} likes")

    # Only the changed field is written.
    hello = await Post.get(title="Hello")
    hello.likes += 1
    await hello.save()
    print("hello now has", (await Post.get(id=hello.id)).likes, "like")

    removed = await Post.filter(likes__lt=5).delete()
    print("removed", removed, "unpopular post(s);", await Post.select().count(), "left")

    await db.drop_tables(User, Post)
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
