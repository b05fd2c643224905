"""Kino on Ray Serve: each service a deployment and a gRPC application behind Serve's gRPC proxy.

`app.build_app` assembles one service's application from typed arguments; `up.run_cluster` runs every
built service on a local Ray cluster (`kino up`); `handles.ServeHandleClients` is how the gateway
reaches the other services inside the cluster; `routing` is what a gRPC client adds to reach them
through the proxy; `metrics_export` serves every replica's Prometheus metrics from one port.
"""
