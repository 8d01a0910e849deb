"""The differentiable operations, one ``Function`` per primitive with its backward beside its
forward, and composite operations written from the primitives.

    import minidl.functions as F
    y = F.sigmoid(F.linear(x, W, b))
"""
from minidl.autograd import Tensor
from minidl.functions.activations import (abs, elu, hard_sigmoid, leaky_relu, maximum, minimum,
                                          mish, relu6, selu, silu, softplus, softsign, swish)
from minidl.functions.arithmetic import add, div, mul, neg, pow, rdiv, rpow, rsub, sub
from minidl.functions.attention import scaled_dot_product_attention
from minidl.functions.batch_norm import batch_norm
from minidl.functions.conv import conv1d, conv2d, im2col, max_pool1d, max_pool2d
from minidl.functions.dropout import dropout
from minidl.functions.elementwise import clip, exp, gelu, log, relu, sigmoid, sqrt, tanh
from minidl.functions.embedding import embedding
from minidl.functions.loss import (binary_cross_entropy, binary_cross_entropy_with_logits,
                                   cross_entropy, mse_loss)
from minidl.functions.matmul import linear, matmul
from minidl.functions.normalization import layer_norm
from minidl.functions.reduction import max, mean, min, sum
from minidl.functions.shape import (broadcast_to, chunk, concat, getitem, reshape, split,
                                    stack, sum_to, swapaxes, transpose)
from minidl.functions.softmax import log_softmax, softmax

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "tanh", "sigmoid", "relu",
           "clip", "sqrt", "matmul", "linear", "sum", "mean", "max", "min", "reshape",
           "transpose", "swapaxes", "broadcast_to", "sum_to", "getitem", "concat", "stack",
           "split", "chunk",
           "softmax", "log_softmax", "embedding", "dropout", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "gelu", "layer_norm",
           "scaled_dot_product_attention", "abs", "maximum", "minimum", "elu", "selu", "softplus",
           "softsign", "silu", "swish", "mish", "leaky_relu", "relu6", "hard_sigmoid",
           "im2col", "conv1d", "conv2d", "max_pool1d", "max_pool2d", "batch_norm"]


def _compare(op):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))
    compare.__doc__ = "Elementwise comparison; a boolean tensor outside the graph."
    return compare


def _with_dim(reduce):
    """A reduction that also takes PyTorch's ``dim=`` for ``axis=`` (``x.sum(dim=1)``)."""
    def method(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return reduce(self, axis if dim is None else dim,
                      keepdims if keepdim is None else keepdim)
    method.__name__, method.__doc__ = reduce.__name__, reduce.__doc__
    return method


def _install_tensor_methods() -> None:
    """Give ``Tensor`` its operators and methods (they live here, beside the ops they call)."""
    import operator
    T = Tensor
    T.__add__ = T.__radd__ = add
    T.__sub__, T.__rsub__ = sub, rsub
    T.__mul__ = T.__rmul__ = mul
    T.__truediv__, T.__rtruediv__ = div, rdiv
    T.__neg__ = neg
    T.__pow__, T.__rpow__ = pow, rpow
    T.__matmul__ = matmul
    T.__rmatmul__ = lambda self, other: matmul(Tensor(other) if not isinstance(other, Tensor)
                                               else other, self)
    T.__getitem__ = getitem
    T.__lt__, T.__le__ = _compare(operator.lt), _compare(operator.le)
    T.__gt__, T.__ge__ = _compare(operator.gt), _compare(operator.ge)
    T.sum, T.mean, T.max, T.min = (_with_dim(f) for f in (sum, mean, max, min))
    T.reshape, T.transpose, T.swapaxes = reshape, transpose, swapaxes
    T.split, T.chunk = split, chunk
    T.T = property(lambda self: transpose(self))
    T.mT = property(lambda self: swapaxes(self, -1, -2))
    T.exp, T.log, T.tanh, T.sigmoid, T.relu = exp, log, tanh, sigmoid, relu
    T.softmax, T.log_softmax = softmax, log_softmax


_install_tensor_methods()
