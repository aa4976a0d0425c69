#!/usr/bin/env python3
"""Fails when an #include points the wrong way through DESIGN.md's module layering.

Modules are ranked; a file may include only headers of modules ranked at or above its own
(lower rank numbers). Kernels include nothing of the project outside kernels/. CUDA headers
appear only in kernels/cuda, src/backend/cuda and the NCCL communicator.
"""
import pathlib
import re
import sys

RANK = {
    "kernels": 1, "core": 2, "backend": 3, "parallel": 4, "model": 5, "text": 6, "kv": 7,
    "sched": 8, "sampling": 9, "runtime": 9, "engine": 9, "api": 10, "server": 10, "apps": 10,
}
SERVER_MAY_SEE = {"api", "engine", "core", "server"}
CUDA_HEADER = re.compile(r"^(cuda|cublas|cublasLt|nccl|cuda_runtime|cuda_fp16|cuda_bf16|cuda_fp8)[\w.]*\.h$|^cub/|^cute/|^cutlass/")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def module_of_file(rel: pathlib.PurePath):
    parts = rel.parts
    if parts[0] == "kernels":
        return "kernels"
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if parts[0] == "include" and len(parts) > 3 and parts[1] == "tessera":
        return parts[2]
    return None


def module_of_include(path: str):
    if path.startswith("kernels/"):
        return "kernels"
    if path.startswith("tessera/"):
        return path.split("/")[1]
    return None


def main(root: str) -> int:
    root_path = pathlib.Path(root)
    errors = []
    checked = 0
    for top in ("src", "include", "kernels"):
        for f in sorted((root_path / top).rglob("*")):
            if f.suffix not in (".h", ".cc", ".cu", ".cuh"):
                continue
            rel = f.relative_to(root_path)
            mod = module_of_file(rel)
            if mod is None:
                continue
            checked += 1
            cuda_allowed = (rel.parts[:2] == ("kernels", "cuda") or
                            rel.parts[:3] == ("src", "backend", "cuda") or
                            "nccl" in f.name)
            for inc in INCLUDE.findall(f.read_text(errors="replace")):
                target = module_of_include(inc)
                if CUDA_HEADER.search(inc) and not cuda_allowed:
                    errors.append(f"{rel}: CUDA header <{inc}> outside the CUDA folders")
                if target is None:
                    continue
                if mod == "kernels" and target != "kernels":
                    errors.append(f"{rel}: kernels include nothing of the project ({inc})")
                elif target not in RANK:
                    errors.append(f"{rel}: include of unknown module '{target}' ({inc})")
                elif RANK[target] > RANK.get(mod, 0):
                    errors.append(f"{rel}: {mod} (layer {RANK[mod]}) includes {target} "
                                  f"(layer {RANK[target]}): {inc}")
                elif mod == "server" and target not in SERVER_MAY_SEE:
                    errors.append(f"{rel}: server sees only api/ and engine/ ({inc})")
    for e in errors:
        print(e)
    print(f"layering: {checked} files checked, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
