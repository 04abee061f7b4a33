"""logocap_mm: LOGO-CAP (CVPR 2022) for MMPose 1.x.

Install the pinned stack with ``make test`` / ``tools/install_env.sh`` (see README). The
extras below choose what a plain ``pip install`` brings.
"""
from setuptools import find_packages, setup

# The torch-free runtime (logocap_rt) needs numpy and OpenCV, plus an inference backend;
# the MMPose plugin (logocap_mm) needs the training stack. One distribution, two packages:
#   pip install logocap-mm[runtime]          inference from an exported .onnx (no torch)
#   pip install logocap-mm[runtime,openvino] ... with the OpenVINO backend too
#   pip install -e .[mmpose,lite]            the MMPose plugin (train / test / demo)
#   pip install -e .[mmpose,lite,deploy]     ... plus ONNX export
# tools/install_env.sh installs the pinned, tested set of all of them.
MMPOSE = [
    'torch>=2.0',
    'mmengine>=0.10.7,<1.0.0',
    'mmdet>=3.2.0,<3.3.0',
    'mmpose>=1.3.2,<1.4.0',
    'xtcocotools>=1.14.3',
    'pycocotools',
]
RUNTIME = ['onnxruntime>=1.16']

setup(
    name='logocap-mm',
    version='0.1.0',
    description='LOGO-CAP (local-global contextual adaptation) bottom-up pose '
                'estimation as an MMPose 1.x plugin, with a torch-free ONNX runtime',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['logocap_mm', 'logocap_mm.*', 'logocap_rt',
                                    'logocap_rt.*']),
    include_package_data=True,
    install_requires=[
        'numpy<2',
        'opencv-python<4.12',
    ],
    extras_require={
        'mmpose': MMPOSE,
        # mmdet 3.2 asserts 2.0.0rc4 <= mmcv < 2.2.0; choose one flavour.
        'lite': ['mmcv-lite==2.1.0'],
        'full': ['mmcv==2.1.0'],
        'runtime': RUNTIME,
        'openvino': ['openvino>=2024.0'],
        'deploy': MMPOSE + RUNTIME + ['onnx>=1.16', 'onnxscript>=0.5'],
        # pose tracking (logocap_rt.tracking); the tracking benchmark also needs motmetrics
        'video': ['scipy>=1.5'],
        'tests': ['pytest', 'openmim==0.3.9', 'motmetrics==1.4.0', 'OneEuroFilter==0.2.1'],
    },
    entry_points={'console_scripts': ['logocap-rt = logocap_rt.cli:run']},
)
