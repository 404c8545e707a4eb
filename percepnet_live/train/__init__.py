"""Training the enhancement network (PyTorch): data, room responses, features, model, loss, trainer, export.

Imported only by the ``train`` and ``eval`` commands; the runtime never imports this package.
"""
