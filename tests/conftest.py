pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.tokens",
    "tests.fixtures.upstream",
    "tests.fixtures.gateway",
    "tests.fixtures.redis",
]
