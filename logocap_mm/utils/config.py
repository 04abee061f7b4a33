"""Config helpers shared by tools and tests (no model or head imports)."""

__all__ = ['strip_pretrained']


def strip_pretrained(cfg):
    """Drop every ``init_cfg`` of type Pretrained from a (nested) config, in place, so that
    building the model never downloads weights. Returns ``cfg``."""
    if isinstance(cfg, dict):
        ic = cfg.get('init_cfg')
        if isinstance(ic, dict) and ic.get('type') == 'Pretrained':
            cfg.pop('init_cfg')
        for v in cfg.values():
            strip_pretrained(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            strip_pretrained(v)
    return cfg
