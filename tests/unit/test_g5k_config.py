"""`testbed:g5k*` provider configuration: file or explicit keys, failures naming the key, secrets."""

from testbed_provider.config import parse_config
from testbed_provider.protocol.redact import REDACTOR


def keys(failures):
    return {f.property for f in failures}


def test_explicit_keys(tmp_path):
    config, failures = parse_config({"backend": "g5k", "g5kUri": "http://127.0.0.1:9/stable/", "g5kUsername": "alice",
                                     "g5kPassword": "s3cret-pass", "g5kTimeout": "12", "g5kVerifySsl": "false"})
    assert failures == []
    s = config.g5k
    assert (s.uri, s.username, s.password, s.timeout, s.verify_ssl) == ("http://127.0.0.1:9/stable", "alice", "s3cret-pass", 12.0, False)
    assert s.proxy_command == "ssh -W %h:%p alice@access.grid5000.fr"
    assert "s3cret-pass" not in repr(s)
    assert REDACTOR.scrub("password s3cret-pass leaked") == "password [secret] leaked"


def test_yaml_file_and_overrides(tmp_path):
    f = tmp_path / "g5k.yaml"
    f.write_text("uri: http://127.0.0.1:8/3.0\nusername: bob\npassword: file-password\ntimeout: 5\n")
    config, failures = parse_config({"backend": "g5k", "g5kConfigFile": str(f), "g5kUsername": "carol",
                                     "g5kSshProxyCommand": "nc %h %p", "g5kSite": "nancy", "g5kSshUser": "admin"})
    assert failures == []
    assert (config.g5k.site, config.g5k.ssh_user) == ("nancy", "admin")
    assert (config.g5k.uri, config.g5k.username, config.g5k.password, config.g5k.timeout) == ("http://127.0.0.1:8/3.0", "carol", "file-password", 5.0)
    assert config.g5k.proxy_command == "nc %h %p"
    assert REDACTOR.scrub("file-password") == "[secret]"


def test_bad_files_are_refused_not_anonymous(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _, failures = parse_config({"backend": "g5k"})
    assert keys(failures) == {"g5kConfigFile"} and ".python-grid5000.yaml" in failures[0].reason
    broken = tmp_path / "broken.yaml"
    broken.write_text("uri: [unterminated\n")
    _, failures = parse_config({"backend": "g5k", "g5kConfigFile": str(broken)})
    assert keys(failures) == {"g5kConfigFile"}
    no_uri = tmp_path / "no-uri.yaml"
    no_uri.write_text("username: alice\n")
    _, failures = parse_config({"backend": "g5k", "g5kConfigFile": str(no_uri)})
    assert keys(failures) == {"g5kConfigFile"} and "uri" in failures[0].reason


def test_bad_values_name_the_key():
    _, failures = parse_config({"backend": "g5k", "g5kUri": "api.grid5000.fr", "g5kTimeout": "-1", "g5kVerifySsl": "maybe"})
    assert keys(failures) == {"g5kUri"}
    _, failures = parse_config({"backend": "g5k", "g5kUri": "https://x/stable", "g5kTimeout": "soon", "g5kVerifySsl": "maybe",
                                "g5kPassword": "only-a-password"})
    assert keys(failures) == {"g5kTimeout", "g5kVerifySsl", "g5kUsername"}


def test_local_backend_ignores_g5k_keys():
    config, failures = parse_config({"backend": "local", "g5kUri": "https://x/stable"})
    assert failures == [] and config.g5k is None
