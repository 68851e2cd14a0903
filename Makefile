# Cormorant developer entry points. `make test` is what CI runs (.ci/run).
#
#   make deps      install Debian packages and .venv (scripts/install-deps.sh)
#   make build     configure and build build/ (libcorm, C tests, C examples)
#   make test      run every suite with pytest (builds build/ and build-asan/)
#   make demo      run the C, Lua and Python examples against DATABASE_URL or a throwaway cluster
#   make install   cmake --install build (PREFIX=/usr/local)
#   make clean     remove the build directories (keeps .venv)
#   make distclean also remove .venv and caches

MAKEFLAGS += --no-print-directory
# The Lua blog on both runtimes, from the tree (sh -c runs it at the top).
LUA_DEMO = for r in 5.4:lua5.4 jit:luajit; do LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD_DIR)/lua/$${r%%:*}/?.so;;" $${r\#*:} examples/lua/blog.lua || exit 1; done

PREFIX ?= /usr/local
BUILD_DIR := build
PYTHON := .venv/bin/python
JOBS ?= 2
# Same options as tests/cormtest.py's plain build, so neither reconfigures the other.
WERROR := $(if $(filter-out 0 false no,$(CI)),ON,OFF)
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORM_ASAN=OFF -DCORM_UBSAN=OFF \
	-DCORM_WERROR=$(WERROR) -DCORM_BUILD_TESTS=ON -DCORM_BUILD_EXAMPLES=ON

.PHONY: deps build test demo install clean distclean

deps:
	bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: deps
	$(PYTHON) -m pytest tests -q -rs

demo: deps build
	$(PYTHON) -m pip install --no-build-isolation --no-deps --no-index -q .
	@if [ -n "$$DATABASE_URL" ]; then \
		./$(BUILD_DIR)/examples/c/blog && ./$(BUILD_DIR)/examples/c/structs && $(PYTHON) examples/python/blog.py && $(LUA_DEMO); \
	else \
		scripts/pgtmp run -- sh -c './$(BUILD_DIR)/examples/c/blog && ./$(BUILD_DIR)/examples/c/structs && $(PYTHON) examples/python/blog.py && $(LUA_DEMO)'; \
	fi

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)
	@if [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf $(BUILD_DIR) build-*/

distclean: clean
	rm -rf .venv .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# make bench: Cormorant against its peers and a libpq floor, W1-W5 of
# ../shared/BENCHMARKS.md, written to bench/RESULTS.md (bench/run.py; a
# throwaway cluster unless BENCH_DATABASE_URL is set; BENCH_ARGS=--small for
# a quick run). Not part of make test, which runs a smoke version of it.
.PHONY: bench
bench: build
	bash bench/setup-peers.sh
	$(PYTHON) bench/run.py $(BENCH_ARGS)
