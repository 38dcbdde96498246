"""Reserved for multiplayer-game helpers.

The original library ships this module empty; it exists so that code importing
``peng3dnet.ext.mpgame`` (or reaching ``peng3dnet.mpgame``) keeps working.
"""
