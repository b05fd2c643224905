"""The Generation service: durable video jobs, the cameo registry and video assets.

Layers, each in its own module: `validation` (what Submit accepts), `store` (the database),
`cameos` and `videos` (the two registries beside the jobs), `clients` (the one way to reach the other
services), `pipeline` (one job's stages), `runner` (which jobs run, recovery, cancellation), `events`
(Watch fan-out), `core` (the transport-neutral service) and `servicer` (its grpc.aio adapter).
"""
