"""logocap_mm: LOGO-CAP (CVPR 2022) for MMPose 1.x.

Install the pinned stack with ``make test`` / ``tools/install_env.sh`` (see README). A plain
``pip install -e .`` expects torch, mmcv (full or lite) and the OpenMMLab packages below.
"""
from setuptools import find_packages, setup

setup(
    name='logocap-mm',
    version='0.1.0',
    description='LOGO-CAP (local-global contextual adaptation) bottom-up pose '
                'estimation as an MMPose 1.x plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['logocap_mm', 'logocap_mm.*', 'logocap_rt',
                                    'logocap_rt.*']),
    include_package_data=True,
    install_requires=[
        'torch>=2.0',
        'numpy<2',
        'opencv-python<4.12',
        'mmengine>=0.10.7,<1.0.0',
        'mmdet>=3.2.0,<3.3.0',
        'mmpose>=1.3.2,<1.4.0',
        'xtcocotools>=1.14.3',
        'pycocotools',
    ],
    extras_require={
        # mmdet 3.2 asserts 2.0.0rc4 <= mmcv < 2.2.0; choose one flavour.
        'lite': ['mmcv-lite==2.1.0'],
        'full': ['mmcv==2.1.0'],
        # pose tracking (logocap_rt.tracking) and its benchmark's MOT metrics
        'video': ['scipy>=1.5', 'motmetrics==1.4.0'],
        'tests': ['pytest', 'openmim==0.3.9', 'motmetrics==1.4.0', 'OneEuroFilter==0.2.1'],
    },
)
