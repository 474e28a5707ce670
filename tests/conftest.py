pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.tokens",
    "tests.fixtures.upstream",
    "tests.fixtures.gateway",
    "tests.fixtures.idp",
    "tests.fixtures.authlib_idp",
    "tests.fixtures.process",
    "tests.fixtures.redis",
]
