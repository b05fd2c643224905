"""The part of kustomize that Kino's k8s/ uses, in Python, so overlays render without kubectl.

Supported, and checked to be all that k8s/ uses: `resources` (files and directories), `namespace`,
`images` (newTag/newName on every `containers`/`initContainers` entry at any depth, as kustomize's
image transformer does) and `patches` with a `path` to an RFC 6902 JSON patch and a `target`
(kind, name, optional group/version). Anything else in a kustomization is an error, so a feature
added to k8s/ later cannot be silently ignored here.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def render(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_KEYS
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml uses {sorted(unknown)}, which this renderer lacks")
    documents: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            documents.extend(render(path))
        else:
            documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in kustomization.get("patches", []):
        operations = yaml.safe_load((directory / patch["path"]).read_text())
        targets = [d for d in documents if _matches(d, patch["target"])]
        if len(targets) != 1:
            raise ValueError(f"patch {patch['path']} matches {len(targets)} resources")
        index = documents.index(targets[0])
        documents[index] = apply_json_patch(targets[0], operations)
    for image in kustomization.get("images", []):
        for document in documents:
            _set_images(document, image)
    if "namespace" in kustomization:
        for document in documents:
            if document["kind"] == "Namespace":
                document["metadata"]["name"] = kustomization["namespace"]
            elif document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = kustomization["namespace"]
    return documents


def _matches(document: dict, target: dict) -> bool:
    group, _, version = document["apiVersion"].rpartition("/")
    return (
        document["kind"] == target["kind"]
        and document["metadata"]["name"] == target.get("name", document["metadata"]["name"])
        and group == target.get("group", group)
        and version == target.get("version", version)
    )


def apply_json_patch(document: dict, operations: list[dict]) -> dict:
    """RFC 6902 add / remove / replace (all k8s/ uses); a missing path is an error, as in kustomize."""
    result = copy.deepcopy(document)
    for operation in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        node = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        op = operation["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, operation["value"])
            elif op == "remove":
                del node[index]
            elif op == "replace":
                node[index] = operation["value"]
            else:
                raise ValueError(f"unsupported op {op}")
        else:
            if op in ("remove", "replace") and last not in node:
                raise KeyError(f"{operation['path']} does not exist")
            if op == "remove":
                del node[last]
            elif op in ("add", "replace"):
                node[last] = operation["value"]
            else:
                raise ValueError(f"unsupported op {op}")
    return result


def _set_images(node, image: dict) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    name, _, _tag = container.get("image", "").partition(":")
                    if name == image["name"]:
                        container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
            else:
                _set_images(value, image)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, image)
