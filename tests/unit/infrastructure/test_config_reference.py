"""docs/configuration.md and the table of settings say the same (as test_contract_coverage does for the API).

The reference table between the settings-table markers is rendered from the
rows of `Settings` (service/infrastructure/config/settings.py); `make docs`
rewrites it. A setting added, removed or changed in the code and not in the
page (or the other way round) fails here.
"""

from __future__ import annotations

from service.infrastructure.config import Settings, rows, variables
from tests.support.docs import page, settings_table, table_rows, with_settings_table


def test_the_page_shows_the_table_of_settings() -> None:
    text = page("docs/configuration.md")
    assert with_settings_table(text) == text, "docs/configuration.md is stale: run `make docs` and commit it"


def test_every_variable_the_reader_knows_is_on_the_page() -> None:
    text = page("docs/configuration.md")
    documented = {cells[0].strip("`") for cells in table_rows(settings_table())[1:]}
    assert documented == {row.variable for row in rows(Settings)}
    for variable in set(variables(Settings)) - documented:  # read by a rule besides a row's own variable
        assert variable in text, f"{variable} is read but docs/configuration.md never names it"


def test_every_row_says_what_it_takes_and_what_it_means() -> None:
    for row in rows(Settings):
        assert all((row.default, row.values, row.meaning)), row
