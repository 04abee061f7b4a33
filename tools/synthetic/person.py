"""One synthetic person: a random articulated pose of the 17 COCO keypoints, its clothes'
colours and its drawing (image or body mask) with OpenCV.

Frames: pixel coordinates of the image (x right, y down). A figure's left side is on the
image right (figures face the camera); heads turn by a yaw angle.
"""
import cv2
import numpy as np

# body proportions as fractions of the figure height (head top to ankle)
PROP = dict(head_r=0.065, neck=0.05, torso=0.30, shoulder_w=0.24, hip_w=0.17,
            upper_arm=0.17, forearm=0.15, thigh=0.25, shin=0.23)
THICK = dict(upper_arm=0.065, forearm=0.052, thigh=0.09, shin=0.07)


def _rot(v, a):
    """Rotate 2-vector(s) v by angle a (radians), image frame (y down)."""
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def sample_pose(rng, height, root_xy):
    """Sample one figure: keypoints (17, 2) float, self-occlusion flags (17,) bool and the
    drawing description. ``root_xy`` is the hip midpoint, ``height`` the figure height in px."""
    h = float(height)
    jit = lambda: rng.uniform(0.9, 1.1)  # noqa: E731
    width_f = rng.uniform(0.8, 1.25)      # body build: aspect ratio of the figure
    L = {k: v * h * (jit() if k not in ('shoulder_w', 'hip_w') else width_f)
         for k, v in PROP.items()}
    kp = np.zeros((17, 2), np.float64)
    hidden = np.zeros(17, bool)
    hip_mid = np.asarray(root_xy, np.float64)
    # torso direction (up = -y), mostly upright, sometimes bending
    t_ang = rng.normal(0, np.deg2rad(10)) if rng.random() < 0.8 else \
        rng.uniform(-1, 1) * np.deg2rad(45)
    up = _rot(np.array([0., -1.]), t_ang)
    right = _rot(np.array([1., 0.]), t_ang)  # towards the figure's left side (image right)
    sh_mid = hip_mid + up * L['torso'] * rng.uniform(0.85, 1.0)
    kp[5] = sh_mid + right * L['shoulder_w'] / 2
    kp[6] = sh_mid - right * L['shoulder_w'] / 2
    kp[11] = hip_mid + right * L['hip_w'] / 2
    kp[12] = hip_mid - right * L['hip_w'] / 2
    # arms: abduction a (0 = down, 90deg = sideways out, 180 = up), elbow flexion
    for side, (s_i, e_i, w_i) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        a = rng.uniform(np.deg2rad(-25), np.deg2rad(175))
        flex = rng.uniform(np.deg2rad(-20), np.deg2rad(150)) * (1 if rng.random() < 0.7 else -1)
        fs = rng.uniform(0.7, 1.0)  # foreshortening
        d1 = np.array([side * np.sin(a), np.cos(a)])
        d1 = _rot(d1, t_ang)
        kp[e_i] = kp[s_i] + d1 * L['upper_arm'] * fs
        d2 = _rot(d1, -side * flex)
        kp[w_i] = kp[e_i] + d2 * L['forearm'] * rng.uniform(0.7, 1.0)
    # legs: outward angle b, knee bend
    sitting = rng.random() < 0.1
    for side, (h_i, k_i, a_i) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        b = rng.uniform(np.deg2rad(-15), np.deg2rad(45))
        fs = rng.uniform(0.45, 0.75) if sitting else rng.uniform(0.85, 1.0)
        d1 = np.array([side * np.sin(b), np.cos(b)])
        kp[k_i] = kp[h_i] + d1 * L['thigh'] * fs
        bend = rng.uniform(np.deg2rad(-40), np.deg2rad(40))
        d2 = _rot(d1, bend)
        kp[a_i] = kp[k_i] + d2 * L['shin'] * rng.uniform(0.85, 1.0)
    # head: tilt, yaw; points on a head "sphere" at azimuth alpha project to r*sin(alpha+yaw)
    r = L['head_r']
    tilt = t_ang + rng.normal(0, np.deg2rad(12))
    hup = _rot(np.array([0., -1.]), tilt)
    hright = _rot(np.array([1., 0.]), tilt)
    head_c = sh_mid + up * L['neck'] + hup * r
    yaw = rng.uniform(-1, 1) * np.deg2rad(70)
    def on_head(alpha, dy):  # noqa: E306
        return head_c + hright * r * np.sin(alpha + yaw) + hup * (-dy * r)
    kp[0] = on_head(0., 0.25)
    hidden[0] = np.cos(yaw) < 0.2
    for idx, alpha in ((1, np.deg2rad(32)), (2, np.deg2rad(-32))):
        kp[idx] = on_head(alpha, -0.15) * 1.0
        kp[idx] = head_c + (kp[idx] - head_c) * 0.85
        hidden[idx] = np.cos(alpha + yaw) < 0.25
    for idx, alpha in ((3, np.pi / 2), (4, -np.pi / 2)):
        kp[idx] = on_head(alpha, 0.05)
        hidden[idx] = np.cos(alpha + yaw) < -0.05
    draw = dict(h=h, head_c=head_c, head_r=r, hup=hup, hright=hright, yaw=yaw,
                torso=np.stack([kp[5], kp[6], kp[12], kp[11]]),
                neck=(sh_mid, head_c), thick={k: max(1, int(round(v * h)))
                                              for k, v in THICK.items()})
    return kp, hidden, draw


def _pt(p):
    return (int(round(p[0] * 16)), int(round(p[1] * 16)))  # 4 fractional bits for cv2


def draw_figure(canvas, kp, hidden, draw, colors, value=None):
    """Draw one figure onto ``canvas`` (H, W, 3 uint8 image or H, W uint8 mask).
    ``value`` (mask mode): the fill value for every part instead of the colours."""
    sh = 4
    lt = cv2.LINE_AA if value is None else cv2.LINE_8
    c = (lambda name: colors[name]) if value is None else (lambda name: value)
    th = draw['thick']
    neck_t = max(1, int(round(draw['h'] * 0.05)))
    cv2.line(canvas, _pt(draw['neck'][0]), _pt(draw['neck'][1]), c('skin'), neck_t, lt, sh)
    torso = draw['torso']
    ctr = torso.mean(0)
    torso = ctr + (torso - ctr) * 1.12
    cv2.fillConvexPoly(canvas, np.array([_pt(p) for p in torso], np.int32), c('shirt'), lt, sh)
    for a, b, part, col in ((11, 13, 'thigh', 'pants'), (12, 14, 'thigh', 'pants'),
                            (13, 15, 'shin', 'pants'), (14, 16, 'shin', 'pants'),
                            (5, 7, 'upper_arm', 'shirt'), (6, 8, 'upper_arm', 'shirt'),
                            (7, 9, 'forearm', 'skin'), (8, 10, 'forearm', 'skin')):
        cv2.line(canvas, _pt(kp[a]), _pt(kp[b]), c(col), th[part], lt, sh)
        cv2.circle(canvas, _pt(kp[b]), int(th[part] * 8), c(col), -1, lt, sh)
    for i in (9, 10):
        cv2.circle(canvas, _pt(kp[i]), int(th['forearm'] * 9), c('skin'), -1, lt, sh)
    for i in (15, 16):
        cv2.circle(canvas, _pt(kp[i]), int(th['shin'] * 9), c('shoes'), -1, lt, sh)
    r = draw['head_r']
    cv2.circle(canvas, _pt(draw['head_c']), int(r * 16), c('skin'), -1, lt, sh)
    for i in (3, 4):  # visible ears
        if not hidden[i]:
            cv2.circle(canvas, _pt(kp[i]), max(1, int(r * 0.3 * 16)), c('ear'), -1, lt, sh)
    if value is None:
        # hair on the back of the head, then the face marks
        hair_c = draw['head_c'] + draw['hup'] * r * 0.45 - draw['hright'] * r * np.sin(
            draw['yaw']) * 0.3
        cv2.ellipse(canvas, _pt(hair_c), (int(r * 0.95 * 16), int(r * 0.55 * 16)), 0, 180,
                    360, colors['hair'], -1, lt, sh)
        for i in (1, 2):
            if not hidden[i]:
                cv2.circle(canvas, _pt(kp[i]), max(1, int(r * 0.18 * 16)), (20, 20, 20), -1,
                           lt, sh)
        if not hidden[0]:
            cv2.circle(canvas, _pt(kp[0]), max(1, int(r * 0.16 * 16)), colors['nose'], -1,
                       lt, sh)


def random_color(rng, lo=0, hi=256):
    """A random BGR colour, each channel in [lo, hi)."""
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def person_colors(rng):
    """Colours of one person's skin, clothes, shoes, hair, ears and nose (BGR tuples)."""
    skin = rng.choice([[60, 80, 120], [90, 130, 190], [120, 160, 220], [150, 190, 235],
                       [50, 60, 90]]) + rng.integers(-15, 16, 3)
    skin = tuple(int(v) for v in np.clip(skin, 0, 255))
    return dict(skin=skin, shirt=random_color(rng), pants=random_color(rng, 0, 200),
                shoes=random_color(rng, 0, 90),
                hair=random_color(rng, 0, 80), ear=tuple(int(v * 0.8) for v in skin),
                nose=tuple(int(v * 0.6) for v in skin))
