"""Writes shaders/conv_nhwc.wgsl from the shared generator lanes_matmul_body.py (see there).

    python3 shaders/gen/conv_nhwc.py          # rewrite the shader
    python3 shaders/gen/conv_nhwc.py --check  # exit 1 if it differs (tests/shaders_validate.rs)
"""

from lanes_matmul_body import TEXTS, write_or_check

write_or_check("conv_nhwc.wgsl", TEXTS["conv_nhwc.wgsl"])
