"""The AudioGenerator service: sound in sync with the picture.

`core` validates requests and runs a backend; `backends` defines the backend interface and the default
foley backend, built from `motion` (visual events from the frames), `foley` (impact sounds by modal
synthesis), `ambience` (textures from the prompt), `speech` (espeak-ng) and `mixing` (mix and limiter);
`servicer` is the grpc.aio adapter and its `registration` for KinoServer.
"""
