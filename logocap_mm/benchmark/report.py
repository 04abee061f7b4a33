"""Markdown tables of a benchmark result (:func:`logocap_mm.benchmark.run.benchmark`)."""
from typing import List

from .stages import STAGES

__all__ = ['markdown']


def _header(res) -> str:
    weights = 'random weights' if res.get('random_weights', True) else \
        f"weights {res['checkpoint']}"
    return (f"device: {res['device_name']} ({res['device']}), torch {res['torch_version']}, "
            f"{res['num_threads']} threads, input {res['input_size']}, flip "
            f"{'on' if res['flip'] else 'off'}, {weights}, {res['repeats']} repeats (median "
            f"ms; min in the JSON), load avg {res['load_avg_start'][0]:.2f} -> "
            f"{res['load_avg_end'][0]:.2f}")


def _wall(res, L: List[str]):
    L.append('| batch | people | backbone+heads (flip) | local KEMs | local KAMs | '
             'global KAMs+decode | post (NMS) | total | per image | after backbone | '
             'DEKR / image | LOGO-CAP / DEKR |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        m = {s: r['stages_ms'][s]['median'] for s in STAGES}
        d = (f"{r['dekr_per_image_ms']:.1f} | {r['ratio_to_dekr']:.2f}"
             if 'dekr_per_image_ms' in r else 'skipped | -')
        L.append(f"| {r['batch_size']} | {r['persons']} | {m['backbone']:.1f} | "
                 f"{m['local_kems']:.1f} | {m['local_kams']:.1f} | {m['global']:.1f} | "
                 f"{m['post']:.1f} | {r['total_ms']['median']:.1f} | "
                 f"{r['per_image_ms']:.1f} | {100 * r['after_backbone_share']:.1f}% | {d} |")


def _cpu(res, L: List[str]):
    L.append('process CPU time (ms, all threads; less sensitive to other load on the machine):')
    L.append('')
    L.append('| batch | people | backbone+heads | local KEMs | local KAMs | global | post | '
             'total | after backbone | DEKR / image | LOGO-CAP / DEKR |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        c = {s: r['cpu_ms'][s]['median'] for s in STAGES}
        tot = sum(c.values())
        d = (f" {r['dekr_cpu_ms_per_image']:.1f} | {r['cpu_ratio_to_dekr']:.2f} |"
             if 'dekr_cpu_ms_per_image' in r else ' - | - |')
        share = 100 * (1 - c['backbone'] / tot) if tot > 0 else 0.
        L.append(f"| {r['batch_size']} | {r['persons']} | " +
                 ' | '.join(f'{c[s]:.1f}' for s in STAGES) +
                 f" | {tot:.1f} | {share:.1f}% |" + d)


def _flops(res, L: List[str]):
    L.append('| batch | people | GFLOP backbone | GFLOP/s backbone | GFLOP/s local KEMs | '
             'GFLOP/s local KAMs | GFLOP global (run / plain) | GFLOP/s global (run / '
             'plain-equivalent) |')
    L.append('|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in res['results']:
        g, f = r['gflops_per_s'], r['gflop']
        L.append(f"| {r['batch_size']} | {r['persons']} | {f['backbone']:.1f} | "
                 f"{g['backbone']:.1f} | {g['local_kems']:.2f} | {g['local_kams']:.1f} | "
                 f"{f['global']:.3f} / {r['global_gflop_plain']:.3f} | {g['global']:.1f} / "
                 f"{r['global_gflops_plain_equiv']:.1f} |")


def _plain(rows, L: List[str]):
    L.append('| batch | people | global fast (ms) | global plain (ms) | max |kpt diff| | '
             'max |score diff| |')
    L.append('|---:|---:|---:|---:|---:|---:|')
    for r in rows:
        c = r['global_fast_vs_plain']
        L.append(f"| {r['batch_size']} | {r['persons']} | "
                 f"{r['stages_ms']['global']['median']:.1f} | "
                 f"{r['global_plain_ms']['median']:.1f} | "
                 f"{c.get('max_abs_keypoints', float('nan')):.2g} | "
                 f"{c.get('max_abs_scores', float('nan')):.2g} |")


def _memory(res, L: List[str]):
    mem = res['memory']
    L.append(f"peak memory ({mem['kind']}, MiB):")
    L.append('')
    L.append('| measurement | batch | people | input | peak above set-up | step ms |')
    L.append('|---|---:|---:|---:|---:|---:|')
    for row in mem['inference']:
        for mode in ('backbone', 'full'):
            w = row[mode]
            v = f"{w['delta_mb']:.0f}" if 'delta_mb' in w else 'error'
            what = 'backbone+heads only' if mode == 'backbone' else 'full LOGO-CAP'
            L.append(f"| inference, {what} | 1 | {row['persons']} | {res['input_size']} | "
                     f"{v} | |")
        if 'logocap_added_ratio' in row:
            L.append(f"| LOGO-CAP stages added | 1 | {row['persons']} | "
                     f"{res['input_size']} | {row['logocap_added_mb']:.0f} "
                     f"({100 * row['logocap_added_ratio']:.1f}%) | |")
    for w in mem['train']:
        if 'delta_mb' in w:
            L.append(f"| training step (fwd+bwd+Adam) | {w['batch_size']} | "
                     f"{w['persons']} | {w['input_size']} | {w['delta_mb']:.0f} | "
                     f"{w['step_ms']:.0f} |")
        else:
            L.append(f"| training step | {w['worker']} | | | error | |")


def markdown(res: dict) -> str:
    """Stage times (wall and process CPU), FLOPs, the fast/plain global comparison and
    peak memory of ``res`` as markdown tables."""
    L = [_header(res), '']
    _wall(res, L)
    L.append('')
    _cpu(res, L)
    if not res['dekr']['available']:
        L += ['', res['dekr']['message']]
    L.append('')
    _flops(res, L)
    plain = [r for r in res['results'] if 'global_plain_ms' in r]
    if plain:
        L.append('')
        _plain(plain, L)
    if res['memory']['inference'] or res['memory']['train']:
        L.append('')
        _memory(res, L)
    return '\n'.join(L)
