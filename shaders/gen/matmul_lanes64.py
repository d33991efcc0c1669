"""Writes shaders/matmul_lanes64.wgsl from the shared generator lanes_matmul_body.py (see there).

    python3 shaders/gen/matmul_lanes64.py          # rewrite the shader
    python3 shaders/gen/matmul_lanes64.py --check  # exit 1 if it differs (tests/shaders_validate.rs)
"""

from lanes_matmul_body import TEXTS, write_or_check

write_or_check("matmul_lanes64.wgsl", TEXTS["matmul_lanes64.wgsl"])
