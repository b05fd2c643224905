"""The generated code under gen/ must be what `make protos` produces from protos/ today."""

from services.common import protogen


def test_generated_code_matches_protos():
    stale = protogen.stale_files()
    assert not stale, f"gen/ is stale, run `make protos`: {stale}"


def test_every_enum_has_an_unspecified_zero_value():
    from kino.v1 import audio_pb2, common_pb2, denoiser_pb2, generation_pb2, ranker_pb2, text_encoder_pb2

    for module in (audio_pb2, common_pb2, denoiser_pb2, generation_pb2, ranker_pb2, text_encoder_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero.endswith("_UNSPECIFIED"), f"{enum.full_name} zero value is {zero}"
