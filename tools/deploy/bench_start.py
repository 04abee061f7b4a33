"""Start-up cost of the runtime: process start to the first result, against a bare script.

    python tools/deploy/bench_start.py FILE.onnx [--image IMG] [--threads 2] [--rounds 5]
        [--out start.json]

Each round starts two fresh Python processes, alternately:

* ``bare``: imports only numpy, cv2 and onnxruntime, creates the session, reads the image,
  resizes it to a canvas of the runtime's size (short side = the file's input size, sides
  multiples of 64), normalises it and runs the graph once;
* ``runtime``: ``from logocap_rt import LogoCapONNX``, ``LogoCapONNX(FILE)(IMG)`` (metadata
  checks, the test canvas, the graph, pose NMS, mapping to the image).

Prints the best and median wall time from ``subprocess`` start to the process's exit (one
result each) and the runtime's extra seconds, and whether the runtime process imported any
of torch, mmengine, mmcv, mmpose or logocap_mm. The ONNX file and image are only read.
"""
import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_common import ROOT, add_out, write_out  # noqa: E402

BARE = r'''
import sys
import cv2, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[3])
s = ort.InferenceSession(sys.argv[1], so, providers=['CPUExecutionProvider'])
S = int(s.get_modelmeta().custom_metadata_map['logocap_mm.input_size'])
img = cv2.imread(sys.argv[2])
h, w = img.shape[:2]
r = S / min(h, w)  # the canvas size the runtime uses: short side S, sides multiples of 64
size = (-(-round(w * r) // 64) * 64, -(-round(h * r) // 64) * 64)
img = cv2.resize(img, size)[..., ::-1].astype(np.float32)
x = ((img - (123.675, 116.28, 103.53)) / (58.395, 57.12, 57.375)).astype(np.float32)
out = s.run(None, {s.get_inputs()[0].name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
print(int(out[3].sum()))
'''

RUNTIME = r'''
import sys
from logocap_rt import LogoCapONNX
print(len(LogoCapONNX(sys.argv[1], num_threads=int(sys.argv[3]))(sys.argv[2])))
# (packages, not submodules: a development install's .pth registers the stdlib-only
# 'logocap_mm.mmcv_ext_shim' without importing logocap_mm)
heavy = sorted(m for m in ('torch', 'mmengine', 'mmcv', 'mmpose', 'logocap_mm')
               if m in sys.modules)
print('HEAVY', ','.join(heavy))
'''


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('onnx')
    p.add_argument('--image', default=osp.join(ROOT, 'tests', 'data', 'coco',
                                               '000000196141.jpg'))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--rounds', type=int, default=5)
    args = add_out(p).parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        p.error('--rounds and --threads must be >= 1')
    for path, what in ((args.onnx, 'ONNX file'), (args.image, '--image')):
        if not osp.isfile(path):
            p.error(f'{what} {path} does not exist')
    return args


def _time(code: str, args) -> tuple:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, '-c', code, args.onnx, args.image, str(args.threads)],
                       capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise ValueError(f'the timed process failed: {r.stderr.strip().splitlines()[-1:]}')
    return dt, r.stdout


def main(argv=None):
    args = parse_args(argv)
    from logocap_rt.outputs import InputSet, check_output, json_text
    inputs = InputSet([args.onnx, args.image])
    if args.out:
        check_output(args.out, inputs, '--out')
    times = {'bare': [], 'runtime': []}
    heavy = ''
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        times['bare'].append(_time(BARE, args)[0])
        dt, out = _time(RUNTIME, args)
        times['runtime'].append(dt)
        heavy = out.rsplit('HEAVY', 1)[-1].strip()
    res = dict(onnx=args.onnx, image=args.image, threads=args.threads, rounds=args.rounds,
               load_before=load_before, load_after=os.getloadavg(),
               best_s={k: min(v) for k, v in times.items()},
               median_s={k: statistics.median(v) for k, v in times.items()},
               samples_s=times, heavy_modules_imported=heavy.split(',') if heavy else [])
    res['runtime_extra_s'] = res['best_s']['runtime'] - res['best_s']['bare']
    print(f"bare {res['best_s']['bare']:.2f} s, runtime {res['best_s']['runtime']:.2f} s "
          f"(best of {args.rounds}; medians {res['median_s']['bare']:.2f} / "
          f"{res['median_s']['runtime']:.2f} s): +{res['runtime_extra_s']:.2f} s; "
          f"heavy modules imported by the runtime: {heavy or 'none'}; load "
          f"{load_before[0]:.2f} -> {res['load_after'][0]:.2f}")
    write_out(args, json_text(res), inputs)
    return res


if __name__ == '__main__':
    try:
        main()
    except ValueError as e:
        sys.exit(f'bench_start.py: {e}')
