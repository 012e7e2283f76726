"""Security and limit settings come from flags, then RNN_* variables; bad values stop start-up."""

from __future__ import annotations

import pytest

from server.config import ConfigError, load_config

FLAGS = {  # field -> (flag value, parsed value)
    "max_streams_per_client": ("4", 4),
    "max_upload_disk_bytes": ("4096", 4096),
    "max_queued_jobs": ("0", 0),
    "max_model_parameters": ("1000", 1000),
    "max_upload_bytes": ("2048", 2048),
    "auth_tokens_file": ("/run/secrets/tokens", "/run/secrets/tokens"),
    "tls_cert": ("/tls/cert.pem", "/tls/cert.pem"),
    "tls_key": ("/tls/key.pem", "/tls/key.pem"),
    "tls_client_ca": ("/tls/ca.pem", "/tls/ca.pem"),
}


@pytest.mark.parametrize("field", sorted(FLAGS))
def test_each_setting_reads_its_flag_and_its_variable(field):
    raw, parsed = FLAGS[field]
    flag, env = "--" + field.replace("_", "-"), "RNN_" + field.upper()
    assert getattr(load_config([flag, raw], {}), field) == parsed
    assert getattr(load_config([], {env: raw}), field) == parsed
    other = "7" if parsed != 7 and isinstance(parsed, int) else "/elsewhere"
    assert getattr(load_config([flag, raw], {env: other}), field) == parsed  # the flag wins


@pytest.mark.parametrize("words,expected", [("1", True), ("yes", True), ("0", False), ("off", False)])
def test_allow_insecure_reads_the_environment(words, expected):
    assert load_config([], {"RNN_ALLOW_INSECURE": words}).allow_insecure is expected
    assert load_config(["--allow-insecure"], {}).allow_insecure is True


@pytest.mark.parametrize("argv", [["--max-streams-per-client", "-1"], ["--max-upload-disk-bytes", "0"],
                                  ["--max-model-parameters", "lots"], ["--max-queued-jobs", "1.5"]])
def test_bad_limit_values_are_refused_naming_the_setting(argv):
    with pytest.raises(ConfigError) as err:
        load_config(argv, {})
    assert argv[0][2:].replace("-", "_") in str(err.value)


def test_the_defaults_keep_a_single_client_unrestricted_but_bounded():
    config = load_config([], {})
    assert config.max_streams_per_client == 0  # a client may use every one of max_concurrent_streams
    assert config.max_upload_disk_bytes >= config.max_upload_bytes
    assert config.allow_insecure is False and config.host == "127.0.0.1"
