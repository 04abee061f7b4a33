"""``tools/device/timing.py`` (the GPU checks' end-to-end timing) on CPU with the tiny
config: one row per precision x layout, exactly the injected people decoded in each, the
ratio to the contiguous fp32 row, and ``'+fused'`` reaching ``test_cfg.fuse_conv_bn``."""
import json

from logocap_mm.testing import TINY_CONFIG, load_tool


def test_timing_rows_per_layout_and_fusion(tmp_path):
    tool = load_tool('tools/device/timing.py', 'device_timing')
    out = tmp_path / 't.json'
    assert tool.main(['--config', TINY_CONFIG, '--device', 'cpu', '--out', str(out),
                      '--input-size', '64', '--batch-size', '1', '--persons', '2',
                      '--repeats', '1', '--warmup', '0', '--precisions', 'fp32',
                      '--formats', 'contiguous', 'channels_last+fused']) == 0
    data = json.loads(out.read_text())
    rows = data['rows']
    assert [r['memory_format'] for r in rows] == ['contiguous', 'channels_last+fused']
    assert all(r['poses_returned'] == [2] and r['median_ms'] > 0 for r in rows)
    assert rows[0]['vs_fp32_contiguous'] == 1.0
    assert abs(rows[1]['vs_fp32_contiguous'] - rows[1]['median_ms'] / rows[0]['median_ms']) \
        < 1e-12
    assert not (tmp_path / 't.json.tmp').exists()
