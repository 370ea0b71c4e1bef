"""`testbed:g5k*` provider configuration: file or explicit keys, failures naming the key, secrets."""

from testbed_provider.config import parse_config
from testbed_provider.protocol.codec import Secret
from testbed_provider.protocol.redact import REDACTOR


def keys(failures):
    return {f.property for f in failures}


def test_explicit_keys(tmp_path):
    config, failures = parse_config(
        {
            "backend": "g5k",
            "g5kUri": "http://127.0.0.1:9/stable/",
            "g5kUsername": "alice",
            "g5kPassword": "s3cret-pass",
            "g5kTimeout": "12",
            "g5kVerifySsl": "false",
        }
    )
    assert failures == []
    s = config.g5k
    assert (s.uri, s.username, s.password, s.timeout, s.verify_ssl) == ("http://127.0.0.1:9/stable", "alice", "s3cret-pass", 12.0, False)
    assert s.proxy_command == "ssh -W %h:%p alice@access.grid5000.fr"
    assert "s3cret-pass" not in repr(s)
    assert REDACTOR.scrub("password s3cret-pass leaked") == "password [secret] leaked"


def test_yaml_file_and_overrides(tmp_path):
    f = tmp_path / "g5k.yaml"
    f.write_text("uri: http://127.0.0.1:8/3.0\nusername: bob\npassword: file-password\ntimeout: 5\n")
    config, failures = parse_config(
        {
            "backend": "g5k",
            "g5kConfigFile": str(f),
            "g5kUsername": "carol",
            "g5kSshProxyCommand": "nc %h %p",
            "g5kSite": "nancy",
            "g5kSshUser": "admin",
        }
    )
    assert failures == []
    assert (config.g5k.site, config.g5k.ssh_user) == ("nancy", "admin")
    assert (config.g5k.uri, config.g5k.username, config.g5k.password, config.g5k.timeout) == (
        "http://127.0.0.1:8/3.0",
        "carol",
        "file-password",
        5.0,
    )
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


def reasons(failures):
    return {f.property: f.reason for f in failures}


def test_bad_values_name_the_key():
    # every bad key at once (a bad `g5kUri` reads no file in its place)
    _, failures = parse_config({"backend": "g5k", "g5kUri": "api.grid5000.fr", "g5kTimeout": "-1", "g5kVerifySsl": "maybe"})
    assert reasons(failures) == {
        "g5kUri": "must be an http(s) URL such as `https://api.grid5000.fr/stable` (got the string `api.grid5000.fr`)",
        "g5kVerifySsl": "must be true or false (got the string `maybe`)",
        "g5kTimeout": "must be a positive number of seconds (got `-1`)",
    }
    _, failures = parse_config(
        {"backend": "g5k", "g5kUri": "https://x/stable", "g5kTimeout": "soon", "g5kVerifySsl": "maybe", "g5kPassword": "only-a-password"}
    )
    assert reasons(failures) == {
        "g5kTimeout": "must be a positive number of seconds (got the string `soon`)",
        "g5kVerifySsl": "must be true or false (got the string `maybe`)",
        "g5kUsername": "a password is configured but no user name",
    }
    _, failures = parse_config({"backend": "g5k", "g5kUri": "https://x/stable", "g5kSite": "Lyon", "g5kTimeout": 0, "g5kSshUser": 3})
    assert reasons(failures) == {
        "g5kSite": "must be a Grid'5000 site name such as `rennes` (got the string `Lyon`)",
        "g5kTimeout": "must be a positive number of seconds (got `0`)",
        "g5kSshUser": "must be a string (got `3`)",
    }
    _, failures = parse_config({"backend": "g5k", "g5kUri": "https://x/stable", "g5kColour": "red"})
    assert reasons(failures)["g5kColour"].startswith("unknown configuration key `testbed:g5kColour` (known: backend, chameleon")
    assert " g5kConfigFile," in reasons(failures)["g5kColour"]


def test_a_bad_password_is_never_quoted():
    for password in (12345, Secret(12345)):
        _, failures = parse_config({"backend": "g5k", "g5kUri": "https://x/stable", "g5kUsername": "a", "g5kPassword": password})
        assert reasons(failures) == {"g5kPassword": "must be a string (got a secret value)"}


def test_typed_values_and_the_defaults_an_sdk_sends(tmp_path):
    # an explicit Provider sends typed values, and the declared defaults of what it leaves out
    config, failures = parse_config(
        {
            "backend": "g5k",
            "g5kUri": "https://x/stable",
            "g5kTimeout": 7,
            "g5kVerifySsl": True,
            "g5kSshUser": "root",
            "g5kConfigFile": "~/.python-grid5000.yaml",
        }
    )
    assert failures == [] and (config.g5k.timeout, config.g5k.verify_ssl, config.g5k.ssh_user) == (7.0, True, "root")
    f = tmp_path / "g5k.yaml"
    f.write_text("uri: ftp://x\ntimeout: -2\n")
    _, failures = parse_config({"backend": "g5k", "g5kConfigFile": str(f)})
    assert [(x.property, x.reason) for x in failures] == [
        (
            "g5kConfigFile",
            f"the API address (`uri` of `{f}`) must be an http(s) URL such as `https://api.grid5000.fr/stable` (got `ftp://x`)",
        ),
        ("g5kConfigFile", f"the HTTP `timeout` of `{f}` must be a positive number of seconds (got `-2`)"),
    ]
    # `pulumi config set testbed:g5kUri ""` leaves it unset: the file is read
    config, failures = parse_config({"backend": "g5k", "g5kUri": "", "g5kConfigFile": str(tmp_path / "none.yaml")})
    assert keys(failures) == {"g5kConfigFile"} and "does not exist" in failures[0].reason


def test_local_backend_ignores_g5k_keys():
    config, failures = parse_config({"backend": "local", "g5kUri": "https://x/stable"})
    assert failures == [] and config.g5k is None
