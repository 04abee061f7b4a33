"""The one decode pipeline (LogoCapDecoder over LogoCapLocalAdaptation /
LogoCapGlobalAdaptation): trace, padded core, finalize, stage hooks, state-dict layout."""
import copy

import pytest
import torch
import torch.nn as nn

import logocap_mm  # noqa: F401  (registers the LogoCap* modules)
from mmpose.registry import MODELS

K = 17


def _head():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='LogoCapHead', in_channels=16, embed_channels=8,
                             cmp_channels=(16, 8, 8), num_affine=4,
                             pose_decoder=dict(topk=6, max_people=6, window_size=17,
                                               window_sigma=4., kem_radius=2.5)))
    return head.eval()


def _maps(n_people=(3, 1), h=16, w=20, seed=0):
    """Centre peaks (n per image), positive keypoint maps, random offsets/embedding."""
    g = torch.Generator().manual_seed(seed)
    B = len(n_people)
    hm = torch.rand(B, K + 1, h, w, generator=g) * 0.3
    hm[:, K] = -0.5
    for b, n in enumerate(n_people):
        for i in range(n):
            y, x = 2 + 4 * i, 3 + 5 * i       # an asymmetric blob: one I-frame maximum
            hm[b, K, y, x] = 0.9 - 0.1 * i
            hm[b, K, y, x + 1] = 0.5 - 0.1 * i
            hm[b, K, y + 1, x] = 0.3 - 0.1 * i
    off = torch.randn(B, 2 * K, h, w, generator=g)
    emb = torch.randn(B, 8, h, w, generator=g)
    return hm, off, emb


def test_state_dict_has_each_tensor_once_and_the_cmp_alias():
    head = _head()
    keys = list(head.state_dict())
    assert len(keys) == len(set(keys))
    assert not any(k.startswith(('pose_decoder.', 'global_adaptation.')) for k in keys)
    assert any(k.startswith('local_adaptation.cmp.layers.') for k in keys)
    assert head.cmp is head.local_adaptation.cmp
    assert head.pose_decoder.local_adaptation is head.local_adaptation
    assert head.pose_decoder.global_adaptation is head.global_adaptation
    # a copy keeps its pipeline bound to its own modules
    h2 = copy.deepcopy(head)
    assert h2.pose_decoder.local_adaptation is h2.local_adaptation


def test_old_layout_state_dict_loads():
    """Checkpoints with 'cmp.*' (older layout) load into 'local_adaptation.cmp.*'."""
    src = _head()
    for p in src.parameters():
        p.data.normal_()
    old = {k.replace('local_adaptation.cmp.', 'cmp.'): v.clone()
           for k, v in src.state_dict().items()}
    assert any(k.startswith('cmp.layers.') for k in old)
    dst = _head()
    res = dst.load_state_dict(old, strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # nested (as inside the estimator: prefix 'head.')
    outer = nn.ModuleDict(dict(head=_head()))
    res = outer.load_state_dict({'head.' + k: v for k, v in old.items()}, strict=True)
    assert torch.equal(outer['head'].cmp.layers[0].weight, src.cmp.layers[0].weight)


@pytest.mark.parametrize('level', ['full', 'partial', 'none'])
def test_trace_keys_shapes_and_stage_hook(level):
    head = _head()
    dec = head.pose_decoder
    hm, off, emb = _maps()
    calls = []
    with torch.no_grad():
        res, tr = dec.decode(hm, off, emb, canvas_hw=[(64, 80), (64, 80)], adaptation=level,
                             trace=True, on_stage=lambda n, p: calls.append((n, p)))
    stages = ['initial'] + (['local'] if level != 'none' else []) + \
        [{'full': 'global'}.get(level, level), 'finalize']
    assert calls == [(s, p) for s in stages for p in ('start', 'end')]
    B, T, s = 2, 3, dec.kem_size                # T: the most valid centres of an image
    assert tr['level'] == level
    assert tr['heatmaps_up'].shape == (B, K + 1, 64, 80)
    assert tr['centers'].shape == (B, T, 2) and tr['centers'].dtype == torch.long
    assert tr['valid'].tolist() == [[True] * 3, [True, False, False]]
    assert tr['center_scores'].shape == (B, T) and tr['poses'].shape == (B, T, K, 2)
    assert tr['keypoints'].shape == (B, T, K, 2) and tr['values'].shape == (B, T, K)
    assert tr['scores'].shape == (B, T) and tr['ok'].shape == (B, T)
    assert tr['keep_rank'].shape == (B, T) and len(tr['order']) == B
    if level == 'none':
        assert 'kem' not in tr and 'kams' not in tr
    else:
        assert tr['kem'].shape == (B, T, s, s, K, 2)
        assert tr['kams_raw'].shape == (B, T, K, s, s)
        assert torch.equal(tr['kams'], tr['kams_raw'].clamp(0, 1))
        # the KEM centre is P0
        assert torch.equal(tr['kem'][:, :, s // 2, s // 2], tr['poses'])
    for b, r in enumerate(res):
        o = tr['order'][b]
        assert torch.equal(r['keypoints'], tr['keypoints'][b, o])
        assert torch.equal(r['scores'], tr['scores'][b, o])
    # trace=False: same results, no trace
    with torch.no_grad():
        res2, none = dec.decode(hm, off, emb, canvas_hw=[(64, 80), (64, 80)],
                                adaptation=level)
    assert none is None
    for a, b in zip(res, res2):
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('level', ['full', 'partial', 'none'])
def test_decode_equals_finalize_of_untrimmed_padded(level):
    head = _head()
    dec = head.pose_decoder
    hm, off, emb = _maps((3, 1))
    canvas = torch.tensor([[64, 80], [48, 80]])
    with torch.no_grad():
        res, _ = dec.decode(hm, off, emb, canvas_hw=canvas, adaptation=level)
        for fast in (True, False):
            padded = dec.padded(hm, off, emb, canvas_hw=canvas, adaptation=level,
                                trim=False, fast=fast)
            assert padded['keypoints'].shape == (2, dec.topk, K, 2)
            assert padded['valid'].shape == (2, dec.topk)
            assert padded['valid'].sum(1).tolist() == [3, 1]
            res2 = dec.finalize(padded)
            for a, b in zip(res, res2):
                assert a['keypoints'].shape == b['keypoints'].shape
                for k in a:
                    torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


def test_no_people_padded_all_invalid_and_finalize_empty():
    head = _head()
    dec = head.pose_decoder
    hm, off, emb = _maps((0, 0))
    hm[:, :K] = -0.1                             # no positive score anywhere
    with torch.no_grad():
        for level in ('full', 'partial', 'none'):
            padded = dec.padded(hm, off, emb, adaptation=level)
            assert padded['valid'].shape == (2, dec.topk) and not padded['valid'].any()
            res = dec.finalize(padded)
            assert [r['keypoints'].shape for r in res] == [(0, K, 2)] * 2
            assert [r['scores'].shape for r in res] == [(0, )] * 2


def test_padded_untrimmed_needs_no_host_sync():
    """``padded(trim=False)`` (plain global path) runs on 'meta' tensors, which refuse every
    host read (``.item()``, ``bool()``, ``nonzero``): the core is traceable for export."""
    head = copy.deepcopy(_head()).to('meta')
    hm, off, emb = (t.to('meta') for t in _maps())
    canvas = torch.tensor([[64, 80], [64, 80]], device='meta')
    for level in ('full', 'partial', 'none'):
        out = head.pose_decoder.padded(hm, off, emb, canvas_hw=canvas, adaptation=level)
        assert out['keypoints'].shape == (2, 6, K, 2) and out['valid'].dtype == torch.bool
    with pytest.raises(Exception):   # the trimmed path reads the valid count
        head.pose_decoder.padded(hm, off, emb, adaptation='none', trim=True)


def test_tracing_collects_every_decode():
    head = _head()
    hm, off, emb = _maps()
    with torch.no_grad(), head.pose_decoder.tracing() as traces:
        head.pose_decoder.decode(hm, off, emb, adaptation='partial')
        head.pose_decoder.decode(hm[:1], off[:1], emb[:1], adaptation='none')
    assert [t['level'] for t in traces] == ['partial', 'none']
    assert traces[1]['poses'].shape[0] == 1
    _, tr = head.pose_decoder.decode(hm, off, emb)
    assert tr is None and len(traces) == 2       # outside the block: nothing collected


def test_unbound_decoder_and_foreign_cmp_are_refused():
    dec = MODELS.build(dict(type='LogoCapDecoder', sigmas=[0.05] * K))
    hm, off, emb = _maps()
    with pytest.raises(ValueError, match='bound by LogoCapHead'):
        dec.decode(hm, off, emb, adaptation='full')
    head = _head()
    with pytest.raises(ValueError, match='local_adaptation.cmp'):
        head.pose_decoder(hm, off, emb, nn.Identity())


@pytest.mark.parametrize('level', ['full', 'partial'])
def test_local_valid_only_same_valid_slots(level):
    """``local_valid_only`` runs the local stage on the valid prefix only: the valid slots get
    the same keypoints and scores as the all-slot run, the padded slots stay invalid."""
    dec = _head().pose_decoder
    hm, off, emb = _maps((3,))
    with torch.no_grad():
        a = dec.padded(hm[:1], off[:1], emb[:1], adaptation=level, trim=False, fast=False)
        b = dec.padded(hm[:1], off[:1], emb[:1], adaptation=level, trim=False, fast=False,
                       local_valid_only=True)
    v = a['valid']
    assert v.sum().item() == 3              # 3 people in 6 slots
    assert torch.equal(a['valid'], b['valid'])
    torch.testing.assert_close(b['keypoints'][v], a['keypoints'][v], rtol=0, atol=1e-5)
    torch.testing.assert_close(b['keypoint_scores'][v], a['keypoint_scores'][v], rtol=0,
                               atol=1e-6)
    # a batch (3 and 1 people): the local stage runs on the 3-slot prefix of both images;
    # every image gets its own batch-1 result on its valid slots
    hm2, off2, emb2 = _maps((3, 1))
    with torch.no_grad():
        c = dec.padded(hm2, off2, emb2, adaptation=level, trim=False, local_valid_only=True)
        for i, n in enumerate((3, 1)):
            d = dec.padded(hm2[i:i + 1], off2[i:i + 1], emb2[i:i + 1], adaptation=level,
                           trim=False, local_valid_only=True)
            assert torch.equal(c['valid'][i], d['valid'][0]) and d['valid'].sum() == n
            w = d['valid'][0]
            torch.testing.assert_close(c['keypoints'][i][w], d['keypoints'][0][w], rtol=0,
                                       atol=1e-5)
            torch.testing.assert_close(c['keypoint_scores'][i][w], d['keypoint_scores'][0][w],
                                       rtol=0, atol=1e-6)
