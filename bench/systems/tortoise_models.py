"""Tortoise ORM models for bench/systems/py_tortoise.py."""

from tortoise import fields
from tortoise.models import Model


class _Cols(Model):
    id = fields.BigIntField(primary_key=True, generated=False)
    name = fields.TextField()
    email = fields.CharField(max_length=64)
    age = fields.IntField()
    score = fields.FloatField()
    active = fields.BooleanField()
    created_at = fields.DatetimeField()
    balance = fields.DecimalField(max_digits=12, decimal_places=2)
    uuid = fields.UUIDField()
    tags = fields.JSONField()

    class Meta:
        abstract = True


class BenchRow(_Cols):
    class Meta:
        table = "bench_rows"


class BenchInsert(_Cols):
    class Meta:
        table = "bench_insert"


class User(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.TextField()
    email = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "users"


class Post(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="posts")
    title = fields.TextField()
    body = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "posts"
