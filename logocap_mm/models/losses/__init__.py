# Copyright (c) logocap_mm contributors.
