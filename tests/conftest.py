"""Options of the test suite."""


def pytest_addoption(parser):
    parser.addoption("--record-achieved", action="store_true", default=False,
                     help="parity tests: write the metrics this run achieves to tests/golden/achieved.json "
                          "(for the cases run) instead of asserting them")
