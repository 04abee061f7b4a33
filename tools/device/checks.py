"""Device checks in one run, one JSON: tests, a few ``mim train --amp`` iterations, timings.

    python tools/device/checks.py --device cuda --out OUT.json [--budget 420]
    python tools/device/checks.py --device cpu --out OUT.json --quick      (CPU dry run)

Run from the repository root with the package importable (``tools/device/run_checks.sh``
sets that up). Every step runs in a subprocess with its own time limit, inside a total
``--budget`` (seconds); a step that fails or runs out of time is recorded and the next one
runs. The JSON is rewritten after every step, atomically, so a killed run keeps what it had.

Steps:
1. ``env``: Python, torch, CUDA device, bf16 support, numpy and OpenMMLab versions.
2. ``pytest``: tests/test_models/test_pose_estimators/test_precision.py (on CUDA it adds the CPU-vs-CUDA pose check and the
   fp16/bf16 runs on the GPU) and the estimator parity tests (tests/test_parity/).
3. ``mim_train_amp``: ``mim train mmpose tests/configs/tiny_coco.py --amp`` for a few
   iterations (3 epochs of 1 iteration); the losses logged must be finite. On CPU
   mmengine's ``AmpOptimWrapper`` refuses to build (it asserts an accelerator): the dry
   run records that refusal and runs the same command without ``--amp``.
4. ``timing``: end-to-end ``test_step`` of the W32 model (random weights, 512, flip) per
   precision and memory format, batch 1 and 8, with the synthetic N-person scene of
   ``tools/benchmark.py`` injected so that exactly N people are decoded.
5. ``benchmark``: ``tools/benchmark.py`` (per-stage, with DEKR through the torchvision
   deformable conv) at batch 1/8 and 1/30 people, fp32.
"""
import argparse
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from logocap_rt.outputs import atomic_write, check_out_dir, check_output  # noqa: E402


def write_json(path, data):
    """``data`` as JSON (other objects as their ``str``) at ``path`` through the shared
    output rules: the folder is created, the file written atomically, never over a
    directory or a device."""
    check_out_dir(osp.dirname(osp.abspath(path)), what='--out folder')
    return atomic_write(path, json.dumps(data, indent=1, default=str))


def output_paths(out):
    """The files a run writes: ``out`` and the timing / benchmark JSON beside it."""
    return [out, out + '.timing.json', out + '.bench.json']


def run_step(cmd, timeout, env=None, find=()):
    """Run ``cmd`` in its own process group (a timeout ends its children too); returns rc,
    wall time, the output's tail and, for each string in ``find``, whether it was printed."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=max(1, timeout))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = 'timeout'
    r = dict(cmd=' '.join(cmd), rc=rc, wall_s=round(time.perf_counter() - t, 1),
             tail=(out or '')[-3000:])
    r.update({f'printed:{f}': f in (out or '') for f in find})
    return r


def env_info(device):
    import numpy
    import torch
    info = dict(python=sys.version.split()[0], torch=torch.__version__, numpy=numpy.__version__,
                device=device, threads=torch.get_num_threads(),
                load=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmpose', 'xtcocotools', 'pycocotools'):
        try:
            mod = __import__(name)
            info[name] = getattr(mod, '__version__', 'present')
        except Exception as e:  # noqa: BLE001 - recorded, not fatal here
            info[name] = f'import failed: {type(e).__name__}: {e}'
    if device.startswith('cuda') and torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported(),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def _finite_losses(work_dir):
    """Loss values of the runner's scalars.json files under ``work_dir``."""
    vals = []
    for dp, _, files in os.walk(work_dir):
        for f in files:
            if f == 'scalars.json':
                for line in open(osp.join(dp, f)):
                    rec = json.loads(line)
                    vals += [v for k, v in rec.items() if k.startswith('loss')]
    return vals


def mim_train(device, amp, timeout):
    work = tempfile.mkdtemp(prefix='logocap_amp_')
    cmd = [sys.executable, '-m', 'mim', 'train', 'mmpose', 'tests/configs/tiny_coco.py',
           '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=3']
    if device == 'cpu':
        cmd += ['--gpus', '0']
    if amp:
        cmd.append('--amp')
    r = run_step(cmd, timeout, find=('only available training on gpu',))
    losses = _finite_losses(work)
    import math
    r.update(amp=amp, n_loss_values=len(losses),
             losses_finite=bool(losses) and all(math.isfinite(v) for v in losses),
             last_losses=losses[-5:])
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda')
    p.add_argument('--out', required=True)
    p.add_argument('--budget', type=float, default=420., help='seconds for all steps')
    p.add_argument('--quick', action='store_true',
                   help='dry run: fewer tests, smaller timings (CPU)')
    p.add_argument('--skip', nargs='*', default=[],
                   choices=['pytest', 'mim_train', 'timing', 'benchmark'],
                   help='steps not to run (recorded as skipped)')
    args = p.parse_args(argv)
    for path in output_paths(args.out):  # refused before any step runs
        check_output(path, what='--out')
    t0 = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - t0)  # noqa: E731
    res = dict(started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               env=env_info(args.device), steps={})

    def save():
        res['elapsed_s'] = round(time.perf_counter() - t0, 1)
        write_json(args.out, res)
    save()

    py = sys.executable
    tests = ['tests/test_models/test_pose_estimators/test_precision.py']
    if not args.quick:
        tests += ['tests/test_parity/test_parity_stages.py::test_estimator_final_poses_in_original_image']
    skipped = dict(rc='skipped', reason='--skip')
    res['steps']['pytest'] = skipped if 'pytest' in args.skip else run_step(
        [py, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *tests], min(left() * 0.45, 240))
    save()
    if 'mim_train' in args.skip:
        res['steps']['mim_train'] = skipped
    elif args.device == 'cpu':
        refused = mim_train('cpu', True, min(left() * 0.2, 120))
        refused['expected'] = 'AmpOptimWrapper asserts an accelerator on CPU'
        res['steps']['mim_train_amp_cpu_refusal'] = refused
        save()
        res['steps']['mim_train'] = mim_train('cpu', False, min(left() * 0.4, 240))
    else:
        res['steps']['mim_train_amp'] = mim_train(args.device, True, min(left() * 0.3, 120))
    save()
    timing = [py, osp.join('tools', 'device', 'timing.py'), '--device', args.device,
              '--out', args.out + '.timing.json']
    if args.quick:
        timing += ['--input-size', '256', '--batch-size', '1', '--persons', '1', '10',
                   '--repeats', '1', '--precisions', 'fp32', 'bf16',
                   '--formats', 'contiguous', 'channels_last+fused']
    res['steps']['timing'] = skipped if 'timing' in args.skip else run_step(
        timing, min(left() * 0.6, 200 if args.device != 'cpu' else 600))
    if osp.isfile(args.out + '.timing.json'):
        res['timing'] = json.load(open(args.out + '.timing.json'))
    save()
    bench = [py, osp.join('tools', 'benchmark.py'), 'configs/logocap/w32_coco.py',
             '--device', args.device, '--memory', 'none', '--dekr-deform', 'torchvision',
             '--out', args.out + '.bench.json']
    bench += (['--persons', '1', '--batch-size', '1', '--repeats', '1', '--input-size',
               '256', '--no-dekr', '--cid', '--variants', 'fp32-contiguous',
               'fp32-channels_last-fused'] if args.quick else
              ['--persons', '1', '30', '--batch-size', '1', '8', '--repeats', '5', '--peak',
               '--cid', '--variants', 'fp32-contiguous', 'fp32-channels_last',
               'fp32-channels_last-fused'] + (['fp16-channels_last'] if args.device != 'cpu'
                                              else []))
    if 'benchmark' in args.skip:
        res['steps']['benchmark'] = skipped
    elif left() > 30:
        res['steps']['benchmark'] = run_step(bench, left() - 10)
        if osp.isfile(args.out + '.bench.json'):
            res['benchmark'] = json.load(open(args.out + '.bench.json'))
    else:
        res['steps']['benchmark'] = dict(rc='skipped', reason='time budget spent')
    save()
    ok = all(s.get('rc') in (0, 'skipped') for k, s in res['steps'].items()
             if not k.endswith('_refusal'))
    print(json.dumps({k: (s.get('rc'), s.get('wall_s')) for k, s in res['steps'].items()}))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
