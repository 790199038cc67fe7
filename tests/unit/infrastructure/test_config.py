"""Settings read from the environment, and the errors bad values give."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from service.bootstrap import page_token_key
from service.infrastructure.config import (
    BUILT_IN_PAGE_TOKEN_SECRET,
    ConfigError,
    MongoSettings,
    Settings,
    TlsSettings,
    TracingSettings,
    local_health_address,
    pem,
    rows,
    variables,
)
from tests.support import server_contract
from tests.support.certificates import CertificateAuthority

SECRET = "tests-only-Kq8vX2pL9mZ4"  # noqa: S105 (a throwaway test value)
WITH_SECRET = {"TODO_PAGE_TOKEN_SECRET": SECRET}


class TestDefaults:
    def test_an_empty_environment_gives_the_defaults(self) -> None:
        settings = Settings.from_env({})

        assert settings == Settings()
        assert settings.grpc_address == "0.0.0.0:50051"
        assert settings.log_level == "INFO"
        assert settings.log_level_number == logging.INFO
        assert settings.shutdown_grace_seconds == 10.0
        assert settings.page_token_secret is None  # a random one per process (the in-memory store)

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
        settings = Settings.from_env({"TODO_PAGE_TOKEN_SECRET": SECRET})

        assert settings.page_token_secret == SECRET


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


class TestMongoDB:
    def test_unset_uri_means_the_in_memory_store(self) -> None:
        assert Settings.from_env({"TODO_MONGODB_DATABASE": "ignored"}).mongodb is None

    def test_uri_with_defaults(self) -> None:
        mongodb = Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": "mongodb://127.0.0.1:27017/"}).mongodb
        assert mongodb == MongoSettings(uri="mongodb://127.0.0.1:27017/")
        assert (mongodb.database, mongodb.driver) == ("todo", "motor")
        assert mongodb.operation_timeout_seconds == 5.0
        assert mongodb.server_selection_timeout_seconds == 2.0
        assert mongodb.connect_timeout_seconds == 2.0

    def test_every_mongodb_setting_is_read(self) -> None:
        mongodb = Settings.from_env(
            {
                **WITH_SECRET,
                "TODO_MONGODB_URI": "mongodb://db-0:27017,db-1:27017/?replicaSet=rs0",
                "TODO_MONGODB_DATABASE": "todo_prod",
                "TODO_MONGODB_DRIVER": "PyMongo",
                "TODO_MONGODB_TIMEOUT_SECONDS": "0.75",
                "TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS": "3",
                "TODO_MONGODB_CONNECT_TIMEOUT_SECONDS": "4",
            }
        ).mongodb
        assert mongodb == MongoSettings(
            uri="mongodb://db-0:27017,db-1:27017/?replicaSet=rs0",
            database="todo_prod",
            driver="pymongo",
            operation_timeout_seconds=0.75,
            server_selection_timeout_seconds=3.0,
            connect_timeout_seconds=4.0,
        )

    def test_srv_uri_is_accepted_without_a_dns_lookup(self) -> None:
        mongodb = Settings.from_env(
            {**WITH_SECRET, "TODO_MONGODB_URI": "mongodb+srv://cluster.example.invalid/"}
        ).mongodb
        assert mongodb is not None
        assert mongodb.uri == "mongodb+srv://cluster.example.invalid/"

    @pytest.mark.parametrize(
        "uri",
        [
            "http://127.0.0.1:27017",
            "mongodb://",
            "mongodb://user:s3cret@127.0.0.1:notaport/",
            "mongodb://127.0.0.1:27017/?unknownOption=1&w=-5",
            "mongodb+srv:///nohost",
        ],
    )
    def test_malformed_uri_is_a_config_error_that_never_repeats_the_uri(self, uri: str) -> None:
        with pytest.raises(ConfigError, match="TODO_MONGODB_URI") as caught:
            Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": uri})
        assert "s3cret" not in str(caught.value)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("TODO_MONGODB_DRIVER", "mongoengine"),
            ("TODO_MONGODB_DATABASE", "has space"),
            ("TODO_MONGODB_DATABASE", "a" * 64),
            ("TODO_MONGODB_TIMEOUT_SECONDS", "0"),
            ("TODO_MONGODB_SERVER_SELECTION_TIMEOUT_SECONDS", "soon"),
        ],
    )
    def test_bad_mongodb_values_name_their_variable(self, name: str, value: str) -> None:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": "mongodb://127.0.0.1/", name: value})

    def test_health_interval(self) -> None:
        assert Settings.from_env({"TODO_HEALTH_CHECK_INTERVAL_SECONDS": "0.5"}).health_interval_seconds == 0.5
        with pytest.raises(ConfigError, match="TODO_HEALTH_CHECK_INTERVAL_SECONDS"):
            Settings.from_env({"TODO_HEALTH_CHECK_INTERVAL_SECONDS": "0"})


class TestTransportSecurity:
    def test_tls_needs_both_files(self, tmp_path: Path) -> None:
        cert = tmp_path / "cert.pem"
        cert.write_text("x")
        with pytest.raises(ConfigError, match="TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE"):
            Settings.from_env({"TODO_TLS_CERT_FILE": str(cert)})
        with pytest.raises(ConfigError, match="TODO_TLS_CLIENT_CA_FILE needs"):
            Settings.from_env({"TODO_TLS_CLIENT_CA_FILE": str(cert)})

    def test_tls_files_are_read(self, tmp_path: Path) -> None:
        ca = CertificateAuthority("test CA")
        server = ca.issue_server("localhost")
        files = {"cert.pem": server.certificate, "key.pem": server.key, "ca.pem": ca.certificate}
        for name, data in files.items():
            (tmp_path / name).write_bytes(data)
        (tmp_path / "key.pem").chmod(0o600)
        settings = Settings.from_env(
            {
                "TODO_TLS_CERT_FILE": str(tmp_path / "cert.pem"),
                "TODO_TLS_KEY_FILE": str(tmp_path / "key.pem"),
                "TODO_TLS_CLIENT_CA_FILE": str(tmp_path / "ca.pem"),
            }
        )
        assert settings.tls == TlsSettings(
            str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), str(tmp_path / "ca.pem")
        )
        assert settings.warnings == ()

    def test_unreadable_files_are_config_errors(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "nope")
        for name in ("TODO_TLS_CERT_FILE", "TODO_AUTH_TOKENS_FILE"):
            with pytest.raises(ConfigError, match=name):
                Settings.from_env({name: missing})

    def test_access_log_switch(self) -> None:
        assert Settings.from_env({}).access_log is True
        assert Settings.from_env({"TODO_ACCESS_LOG": "false"}).access_log is False
        with pytest.raises(ConfigError, match="TODO_ACCESS_LOG"):
            Settings.from_env({"TODO_ACCESS_LOG": "sometimes"})

    def test_reflection_switch(self) -> None:
        assert Settings.from_env({"TODO_REFLECTION": "off"}).reflection is False
        with pytest.raises(ConfigError, match="TODO_REFLECTION"):
            Settings.from_env({"TODO_REFLECTION": "maybe"})


class TestDatabaseInTheUri:
    def test_the_uri_names_the_database_when_the_variable_is_unset(self) -> None:
        mongodb = Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": "mongodb://127.0.0.1:27017/mydb"}).mongodb
        assert mongodb is not None
        assert mongodb.database == "mydb"

    def test_the_variable_wins_over_the_uri(self) -> None:
        mongodb = Settings.from_env(
            {
                **WITH_SECRET,
                "TODO_MONGODB_URI": "mongodb://127.0.0.1/mydb?retryWrites=true",
                "TODO_MONGODB_DATABASE": "other",
            }
        ).mongodb
        assert mongodb is not None
        assert mongodb.database == "other"

    def test_an_srv_uri_names_the_database_too(self) -> None:
        mongodb = Settings.from_env(
            {**WITH_SECRET, "TODO_MONGODB_URI": "mongodb+srv://cluster.example.invalid/todo_srv"}
        ).mongodb
        assert mongodb is not None
        assert mongodb.database == "todo_srv"

    def test_a_uri_without_a_database_keeps_the_default(self) -> None:
        mongodb = Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": "mongodb://127.0.0.1/?replicaSet=rs0"}).mongodb
        assert mongodb is not None
        assert mongodb.database == "todo"

    def test_a_bad_database_name_in_the_uri_is_refused_without_repeating_the_uri(self) -> None:
        for uri in ("mongodb://user:s3cret@127.0.0.1/" + "a" * 64, "mongodb://user:s3cret@127.0.0.1/has%20space"):
            with pytest.raises(ConfigError, match="TODO_MONGODB_URI") as caught:
                Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI": uri})
            assert "s3cret" not in str(caught.value)


class TestEveryProblemAtOnce:
    def test_all_bad_variables_are_reported_in_one_line(self) -> None:
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"TODO_LOG_LEVEL": "chatty", "TODO_WORKERS": "many", "TODO_SHUTDOWN_GRACE_SECONDS": "-1"})
        message = str(caught.value)
        assert "\n" not in message
        for name in ("TODO_LOG_LEVEL", "TODO_WORKERS", "TODO_SHUTDOWN_GRACE_SECONDS"):
            assert name in message

    def test_whole_number_ranges_are_written_as_whole_numbers(self) -> None:
        with pytest.raises(ConfigError, match=r"must be between 1024 and 1073741824$"):
            Settings.from_env({"TODO_MAX_RECEIVE_MESSAGE_BYTES": "1"})


class TestTracing:
    def test_off_without_otel_variables(self) -> None:
        assert Settings.from_env({}).tracing == TracingSettings()
        assert Settings.from_env({"OTEL_SERVICE_NAME": "todo"}).tracing.exporters == ()

    def test_disabled_sdk_wins(self) -> None:
        settings = Settings.from_env({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
        assert settings.tracing.exporters == ()

    def test_none_exporter_is_off(self) -> None:
        assert Settings.from_env({"OTEL_TRACES_EXPORTER": "none"}).tracing.exporters == ()

    def test_exporters_and_service_name(self) -> None:
        tracing = Settings.from_env({"OTEL_TRACES_EXPORTER": "Console, otlp", "OTEL_SERVICE_NAME": "todo-a"}).tracing
        assert tracing == TracingSettings(exporters=("console", "otlp"), service_name="todo-a")

    def test_an_endpoint_alone_turns_otlp_on(self) -> None:
        tracing = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}).tracing
        assert tracing.exporters == ("otlp",)
        assert tracing.otlp_endpoint == "http://127.0.0.1:4317"

    def test_the_traces_endpoint_wins(self) -> None:
        tracing = Settings.from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317"}
        ).tracing
        assert tracing.otlp_endpoint == "http://b:4317"

    def test_unknown_exporter_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
            Settings.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


class TestProbeAddress:
    def test_loopback_and_the_configured_port(self) -> None:
        assert local_health_address({}) == "127.0.0.1:50051"
        assert local_health_address({"TODO_GRPC_ADDRESS": "0.0.0.0:6000"}) == "127.0.0.1:6000"

    def test_a_bad_address_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigError, match="TODO_GRPC_ADDRESS"):
            local_health_address({"TODO_GRPC_ADDRESS": "nope"})


class TestPageTokenSecret:
    """Fail closed: MongoDB needs a real secret; memory gets a random one."""

    MONGO: ClassVar[dict[str, str]] = {"TODO_MONGODB_URI": "mongodb://127.0.0.1:27017/"}

    def test_memory_without_a_secret_gets_a_random_one_per_process(self) -> None:
        assert Settings.from_env({}).page_token_secret is None
        (first,), (second,) = page_token_key(Settings()), page_token_key(Settings())
        assert len(first) == 32
        assert first != second

    def test_a_configured_secret_is_the_key(self) -> None:
        assert page_token_key(Settings.from_env(WITH_SECRET)) == [SECRET.encode()]

    def test_several_keys_rotate_the_secret_and_each_is_checked(self) -> None:
        new = "n3w-k3y-0f-the-rotation-9c2e"
        settings = Settings.from_env({"TODO_PAGE_TOKEN_SECRET": f"{new}, {SECRET}"})
        assert page_token_key(settings) == [new.encode(), SECRET.encode()]
        with pytest.raises(ConfigError, match=r"TODO_PAGE_TOKEN_SECRET \(key 2\) is shorter than 16 bytes"):
            Settings.from_env({"TODO_PAGE_TOKEN_SECRET": f"{new},sh0rt-k3y"})

    def test_mongodb_without_a_secret_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigError, match=r"TODO_PAGE_TOKEN_SECRET \(or TODO_PAGE_TOKEN_SECRET_FILE\) is required"):
            Settings.from_env(self.MONGO)

    @pytest.mark.parametrize(
        ("secret", "problem"),
        [
            (BUILT_IN_PAGE_TOKEN_SECRET, "the built-in value"),
            ("changeme", "a placeholder"),
            ("CHANGE-ME", "a placeholder"),
            ("secret", "a placeholder"),
            ("Password", "a placeholder"),
            ("REPLACE-ME-with-the-output-of-openssl-rand-base64-32", "a placeholder"),
            ("<your-secret-here-0123456789>", "a placeholder"),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "repeated"),
            ("0123456789abcde", "shorter than 16 bytes"),
        ],
    )
    def test_the_built_in_value_placeholders_and_short_secrets_are_refused(self, secret: str, problem: str) -> None:
        for env in (self.MONGO, {}):  # refused with either store: a configured secret must be real
            with pytest.raises(ConfigError, match="TODO_PAGE_TOKEN_SECRET") as caught:
                Settings.from_env({**env, "TODO_PAGE_TOKEN_SECRET": secret})
            assert problem in str(caught.value)
            assert secret not in str(caught.value)  # a secret is never echoed

    def test_a_secret_file_is_read_and_its_final_newline_dropped(self, tmp_path: Path) -> None:
        path = tmp_path / "page-token-secret"
        path.write_text(SECRET + "\n")
        settings = Settings.from_env({**self.MONGO, "TODO_PAGE_TOKEN_SECRET_FILE": str(path)})
        assert settings.page_token_secret == SECRET

    @pytest.mark.parametrize("content", ["", "\n", "changeme\n"])
    def test_an_empty_or_placeholder_secret_file_is_refused(self, tmp_path: Path, content: str) -> None:
        path = tmp_path / "page-token-secret"
        path.write_text(content)
        with pytest.raises(ConfigError, match="TODO_PAGE_TOKEN_SECRET"):
            Settings.from_env({**self.MONGO, "TODO_PAGE_TOKEN_SECRET_FILE": str(path)})

    def test_a_missing_secret_file_and_both_forms_at_once_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="TODO_PAGE_TOKEN_SECRET_FILE"):
            Settings.from_env({**self.MONGO, "TODO_PAGE_TOKEN_SECRET_FILE": str(tmp_path / "nope")})
        path = tmp_path / "page-token-secret"
        path.write_text(SECRET)
        with pytest.raises(ConfigError, match="both set"):
            Settings.from_env({**WITH_SECRET, "TODO_PAGE_TOKEN_SECRET_FILE": str(path)})

    def test_the_mongodb_uri_can_come_from_a_file_and_is_never_echoed(self, tmp_path: Path) -> None:
        path = tmp_path / "mongodb-uri"
        path.write_text("mongodb://user:s3cret-pw@db-0:27017/fromfile\n")
        mongodb = Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI_FILE": str(path)}).mongodb
        assert mongodb is not None
        assert (mongodb.uri, mongodb.database) == ("mongodb://user:s3cret-pw@db-0:27017/fromfile", "fromfile")
        path.write_text("mongodb://user:s3cret-pw@db-0:notaport/")
        with pytest.raises(ConfigError, match="TODO_MONGODB_URI") as caught:
            Settings.from_env({**WITH_SECRET, "TODO_MONGODB_URI_FILE": str(path)})
        assert "s3cret" not in str(caught.value)
        with pytest.raises(ConfigError, match="both set"):
            Settings.from_env({**WITH_SECRET, **self.MONGO, "TODO_MONGODB_URI_FILE": str(path)})

    def test_several_workers_need_mongodb_so_a_random_secret_is_never_shared(self) -> None:
        with pytest.raises(ConfigError, match="TODO_WORKERS > 1 needs TODO_MONGODB_URI"):
            Settings.from_env({"TODO_WORKERS": "2", "TODO_GRPC_ADDRESS": "127.0.0.1:50051"})
        with pytest.raises(ConfigError, match="TODO_PAGE_TOKEN_SECRET"):
            Settings.from_env({**self.MONGO, "TODO_WORKERS": "2", "TODO_GRPC_ADDRESS": "127.0.0.1:50051"})
        settings = Settings.from_env(
            {**self.MONGO, **WITH_SECRET, "TODO_WORKERS": "2", "TODO_GRPC_ADDRESS": "127.0.0.1:50051"}
        )
        assert settings.page_token_secret == SECRET


class TestTlsFilesAtStart:
    """PEM files are loaded while the configuration is read: a bad one names its file."""

    @pytest.fixture
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority("test CA")

    def write(self, directory: Path, name: str, data: bytes, mode: int = 0o600) -> str:
        path = directory / name
        path.write_bytes(data)
        path.chmod(mode)
        return str(path)

    def env(self, cert: str, key: str, ca: str | None = None) -> dict[str, str]:
        env = {"TODO_TLS_CERT_FILE": cert, "TODO_TLS_KEY_FILE": key}
        if ca is not None:
            env["TODO_TLS_CLIENT_CA_FILE"] = ca
        return env

    def test_a_garbage_key_names_the_key_file(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        pair = ca.issue_server("localhost")
        cert = self.write(tmp_path, "cert.pem", pair.certificate)
        for garbage in (b"not a key\n", b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
            key = self.write(tmp_path, "key.pem", garbage)
            with pytest.raises(ConfigError) as caught:
                Settings.from_env(self.env(cert, key))
            message = str(caught.value)
            assert message.startswith(f"TODO_TLS_KEY_FILE {key!r} is not a usable PEM private key"), message
            assert "\n" not in message

    def test_a_key_of_another_certificate_is_a_mismatch(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        cert = self.write(tmp_path, "cert.pem", ca.issue_server("localhost").certificate)
        key = self.write(tmp_path, "key.pem", ca.issue_server("localhost").key)
        with pytest.raises(ConfigError) as caught:
            Settings.from_env(self.env(cert, key))
        assert str(caught.value) == (
            f"TODO_TLS_KEY_FILE {key!r} does not match the certificate in TODO_TLS_CERT_FILE {cert!r}"
        )

    def test_a_garbage_certificate_or_ca_names_its_file(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        pair = ca.issue_server("localhost")
        cert = self.write(tmp_path, "cert.pem", pair.certificate)
        key = self.write(tmp_path, "key.pem", pair.key)
        garbage = self.write(tmp_path, "garbage.pem", b"hello\n")
        broken = self.write(tmp_path, "broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        for bad in (garbage, broken):
            with pytest.raises(ConfigError, match=f"^TODO_TLS_CERT_FILE {bad!r} "):
                Settings.from_env(self.env(bad, key))
            with pytest.raises(ConfigError, match=f"^TODO_TLS_CLIENT_CA_FILE {bad!r} "):
                Settings.from_env(self.env(cert, key, bad))
        assert Settings.from_env(self.env(cert, key, self.write(tmp_path, "ca.pem", ca.certificate))).tls is not None

    def test_expired_and_not_yet_valid_certificates_are_warnings(
        self, tmp_path: Path, ca: CertificateAuthority
    ) -> None:
        now = datetime.now(UTC)
        expired = ca.issue_server("localhost", valid=(now - timedelta(days=30), now - timedelta(days=1)))
        future = ca.issue_server("localhost", valid=(now + timedelta(days=1), now + timedelta(days=30)))
        for pair, words in ((expired, "expired on"), (future, "is not valid before")):
            cert = self.write(tmp_path, "cert.pem", pair.certificate)
            key = self.write(tmp_path, "key.pem", pair.key)
            settings = Settings.from_env(self.env(cert, key))
            assert len(settings.warnings) == 1, settings.warnings
            assert settings.warnings[0].startswith(f"TODO_TLS_CERT_FILE {cert!r}: the certificate ")
            assert words in settings.warnings[0]

    def test_the_validity_dates_are_read_from_the_certificate(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        start, end = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2060, 7, 8, 9, 10, 11, tzinfo=UTC)
        cert = self.write(tmp_path, "cert.pem", ca.issue_server("localhost", valid=(start, end)).certificate)
        assert pem.validity(cert) == (start, end)  # UTCTime before 2050, GeneralizedTime after

    def test_a_key_readable_by_its_own_group_is_fine(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        # Kubernetes' fsGroup makes secret files 0440 with the pod's (the service's) group.
        pair = ca.issue_server("localhost")
        cert = self.write(tmp_path, "cert.pem", pair.certificate, 0o644)
        key = self.write(tmp_path, "key.pem", pair.key, 0o440)
        os.chown(key, -1, os.getgid())
        assert Settings.from_env(self.env(cert, key)).warnings == ()

    def test_a_key_readable_by_others_is_a_warning(self, tmp_path: Path, ca: CertificateAuthority) -> None:
        pair = ca.issue_server("localhost")
        cert = self.write(tmp_path, "cert.pem", pair.certificate, 0o644)
        key = self.write(tmp_path, "key.pem", pair.key, 0o644)
        (warning,) = Settings.from_env(self.env(cert, key)).warnings
        assert warning.startswith(f"TODO_TLS_KEY_FILE {key!r} is readable by group or others")
        Path(key).chmod(0o400)
        assert Settings.from_env(self.env(cert, key)).warnings == ()


class RecordingEnvironment(dict[str, str]):
    """An environment that records every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_the_reader_reads_exactly_the_variables_of_the_table() -> None:
    environment = RecordingEnvironment({**WITH_SECRET, "TODO_MONGODB_URI": "mongodb://127.0.0.1/"})
    Settings.from_env(environment)
    assert environment.asked == set(variables(Settings))


def test_the_deployment_contract_is_the_table() -> None:
    assert set(server_contract.TODO_ENV) == {name for name in variables(Settings) if name.startswith("TODO_")}
    assert set(server_contract.OTEL_ENV) <= set(variables(Settings))
    secrets = {row.variable for row in rows(Settings) if row.secret}
    assert secrets == server_contract.SECRET_ENV


class TestTokensFile:
    def test_it_is_read_with_the_settings(self, tmp_path: Path) -> None:
        path = tmp_path / "tokens"
        path.write_text("# callers\ntok-one-7f3a-0c9e2b41\nreporter sha256:" + "ab" * 32 + "\n")
        tokens = Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(path)}).auth_tokens
        assert tokens is not None
        assert (tokens.path, len(tokens.digests)) == (str(path), 2)
        assert "tok-one" not in repr(tokens)
        unnamed = hashlib.sha256(b"tok-one-7f3a-0c9e2b41").hexdigest()[:12]
        assert tokens.principal_names() == (f"token:{unnamed}", "reporter")

    @pytest.mark.parametrize(
        ("line", "problem"),
        [
            ("k3y-9f2c", "line 1: the token is shorter than 16 bytes"),
            ("REPLACE-ME-token-of-caller-one", "line 1: the token is a placeholder"),
            ("<token>", "line 1: the token is a placeholder"),
            ("aaaaaaaaaaaaaaaaaaaaaaaa", "line 1: the token is one or two characters repeated"),
            ("two words and-a-token-4f1e9a7c", "line 1: expected `<token>` or `<principal> <token>`"),
            ("bad|name tok-one-7f3a-0c9e2b41", "line 1: a principal name is"),
        ],
    )
    def test_weak_tokens_and_bad_lines_stop_the_start(self, tmp_path: Path, line: str, problem: str) -> None:
        path = tmp_path / "tokens"
        path.write_text(line + "\n")
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(path)})
        assert problem in str(caught.value)
        assert line.rsplit(maxsplit=1)[-1] not in str(caught.value), "a token is never echoed"

    def test_a_tokens_file_over_1_mib_is_refused_unread(self, tmp_path: Path) -> None:
        path = tmp_path / "tokens"
        path.write_text("tok-one-7f3a-0c9e2b41\n" * 60_000)
        with pytest.raises(ConfigError, match="is larger than 1048576 bytes"):
            Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(path)})

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            ("", "holds no token"),
            ("# only a comment\n\n", "holds no token"),
            ("sha256:abc\n", "line 1: a sha256: token needs 64 hex digits"),
        ],
    )
    def test_a_file_without_usable_tokens_is_a_config_error(self, tmp_path: Path, content: str, problem: str) -> None:
        path = tmp_path / "tokens"
        path.write_text(content)
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(path), "TODO_LOG_LEVEL": "chatty"})
        assert f"TODO_AUTH_TOKENS_FILE={str(path)!r} {problem}" in str(caught.value)
        assert "TODO_LOG_LEVEL" in str(caught.value), "reported with every other problem"

    def test_a_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"TODO_AUTH_TOKENS_FILE=.* cannot be read"):
            Settings.from_env({"TODO_AUTH_TOKENS_FILE": str(tmp_path / "gone")})
