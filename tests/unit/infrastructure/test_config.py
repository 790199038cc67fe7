"""Settings read from the environment, and the errors bad values give."""

from __future__ import annotations

import logging

import pytest

from service.infrastructure.config import (
    DEFAULT_GRPC_ADDRESS,
    DEFAULT_PAGE_TOKEN_SECRET,
    DEFAULT_SHUTDOWN_GRACE_SECONDS,
    ConfigError,
    Settings,
)


class TestDefaults:
    def test_an_empty_environment_gives_the_defaults(self) -> None:
        settings = Settings.from_env({})

        assert settings == Settings()
        assert settings.grpc_address == DEFAULT_GRPC_ADDRESS == "0.0.0.0:50051"
        assert settings.log_level == "INFO"
        assert settings.log_level_number == logging.INFO
        assert settings.shutdown_grace_seconds == DEFAULT_SHUTDOWN_GRACE_SECONDS == 10.0
        assert settings.page_token_secret == DEFAULT_PAGE_TOKEN_SECRET

    def test_blank_values_count_as_unset(self) -> None:
        settings = Settings.from_env(
            {
                "TODO_GRPC_ADDRESS": "  ",
                "TODO_LOG_LEVEL": "",
                "TODO_SHUTDOWN_GRACE_SECONDS": " ",
                "TODO_PAGE_TOKEN_SECRET": "",
            }
        )

        assert settings == Settings()

    def test_unrelated_variables_are_ignored(self) -> None:
        assert Settings.from_env({"PATH": "/bin", "TODO_OTHER": "x"}) == Settings()


class TestValidOverrides:
    @pytest.mark.parametrize(
        "address",
        ["127.0.0.1:8080", "localhost:50051", "[::1]:50051", "[::]:1", "my-host.example:65535", "0.0.0.0:0"],
    )
    def test_grpc_address(self, address: str) -> None:
        assert Settings.from_env({"TODO_GRPC_ADDRESS": address}).grpc_address == address

    def test_grpc_address_is_trimmed(self) -> None:
        assert Settings.from_env({"TODO_GRPC_ADDRESS": " [::1]:50051\n"}).grpc_address == "[::1]:50051"

    @pytest.mark.parametrize(
        ("raw", "level", "number"),
        [("DEBUG", "DEBUG", logging.DEBUG), ("warning", "WARNING", logging.WARNING), (" error ", "ERROR", 40)],
    )
    def test_log_level_is_case_insensitive(self, raw: str, level: str, number: int) -> None:
        settings = Settings.from_env({"TODO_LOG_LEVEL": raw})

        assert settings.log_level == level
        assert settings.log_level_number == number

    @pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("2.5", 2.5), ("3600", 3600.0), (" 30 ", 30.0)])
    def test_shutdown_grace(self, raw: str, seconds: float) -> None:
        assert Settings.from_env({"TODO_SHUTDOWN_GRACE_SECONDS": raw}).shutdown_grace_seconds == seconds

    def test_page_token_secret(self) -> None:
        settings = Settings.from_env({"TODO_PAGE_TOKEN_SECRET": "s3cret"})

        assert settings.page_token_secret == "s3cret"  # noqa: S105 (a test value)


class TestInvalidValues:
    @pytest.mark.parametrize(
        "address",
        ["localhost", "50051", ":50051", "host:", "host:port", "::1:50051", "host:70000", "host:123456", "a b:1"],
    )
    def test_bad_grpc_address(self, address: str) -> None:
        with pytest.raises(ConfigError, match="TODO_GRPC_ADDRESS"):
            Settings.from_env({"TODO_GRPC_ADDRESS": address})

    def test_port_70000_is_out_of_range(self) -> None:
        with pytest.raises(ConfigError, match="TODO_GRPC_ADDRESS") as caught:
            Settings.from_env({"TODO_GRPC_ADDRESS": "127.0.0.1:70000"})

        assert "70000" in str(caught.value)

    @pytest.mark.parametrize("level", ["VERBOSE", "TRACE", "WARN", "10"])
    def test_unknown_log_level(self, level: str) -> None:
        with pytest.raises(ConfigError, match="TODO_LOG_LEVEL"):
            Settings.from_env({"TODO_LOG_LEVEL": level})

    @pytest.mark.parametrize("grace", ["-1", "-0.5", "3601", "nan", "inf"])
    def test_out_of_range_shutdown_grace(self, grace: str) -> None:
        with pytest.raises(ConfigError, match="TODO_SHUTDOWN_GRACE_SECONDS"):
            Settings.from_env({"TODO_SHUTDOWN_GRACE_SECONDS": grace})

    @pytest.mark.parametrize("grace", ["ten", "10s", "1,5"])
    def test_non_numeric_shutdown_grace(self, grace: str) -> None:
        with pytest.raises(ConfigError, match="TODO_SHUTDOWN_GRACE_SECONDS"):
            Settings.from_env({"TODO_SHUTDOWN_GRACE_SECONDS": grace})

    def test_config_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="TODO_LOG_LEVEL"):
            Settings.from_env({"TODO_LOG_LEVEL": "LOUD"})
