"""The property codec: secrets, unknowns and numbers survive a round trip through protobuf."""

from google.protobuf import struct_pb2

from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.redact import REDACTOR


def roundtrip(props):
    wire = codec.encode(props)
    again = struct_pb2.Struct()
    again.ParseFromString(wire.SerializeToString())
    return codec.decode(again)


def test_plain_values_and_integers():
    props = {"name": "r", "count": 3, "ratio": 0.5, "flag": True, "none": None, "list": [1, "a"], "obj": {"k": 2}}
    assert roundtrip(props) == props
    assert isinstance(roundtrip({"n": 3})["n"], int), "whole numbers come back as int, not 3.0"


def test_secret_roundtrip_and_wire_shape():
    wire = codec.encode({"key": Secret("PRIVATE-KEY-MATERIAL")})
    field = wire.fields["key"].struct_value.fields
    assert field[codec.SIG_KEY].string_value == codec.SIG_SECRET
    assert field["value"].string_value == "PRIVATE-KEY-MATERIAL"
    assert roundtrip({"key": Secret("PRIVATE-KEY-MATERIAL")}) == {"key": Secret("PRIVATE-KEY-MATERIAL")}


def test_nested_secret_and_unknowns():
    props = {"inv": {"ssh": {"privateKey": Secret("abcdefgh")}}, "hosts": UNKNOWN, "xs": [UNKNOWN]}
    back = roundtrip(props)
    assert back["inv"]["ssh"]["privateKey"] == Secret("abcdefgh")
    assert back["hosts"] is UNKNOWN and back["xs"][0] is UNKNOWN
    assert codec.has_unknowns(back) and not codec.has_unknowns({"a": [1, {"b": Secret(2)}]})


def test_typed_unknowns_and_output_values_decode():
    typed_bool = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"
    assert codec.decode_value(typed_bool) is UNKNOWN
    out_unknown = {codec.SIG_KEY: codec.SIG_OUTPUT}
    out_secret = {codec.SIG_KEY: codec.SIG_OUTPUT, "value": "pw-123456", "secret": True}
    assert codec.decode_value(out_unknown) is UNKNOWN
    assert codec.decode_value(out_secret) == Secret("pw-123456")


def test_reveal_unwraps_everything():
    assert codec.reveal({"a": Secret({"b": Secret("c")}), "l": [Secret(1)]}) == {"a": {"b": "c"}, "l": [1]}


def test_secrets_seen_by_the_codec_are_scrubbed_from_text():
    codec.decode_value({codec.SIG_KEY: codec.SIG_SECRET, "value": "hunter2-very-secret"})
    assert "hunter2" not in REDACTOR.scrub("login failed for password hunter2-very-secret")
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"
    codec.encode({"k": Secret(key)})
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ" not in REDACTOR.scrub("stderr: b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")
