"""A software prefetch hint for Numba kernels (LLVM's ``llvm.prefetch``: ``prefetcht0`` on x86).

It never changes a result: it only asks the cache to start fetching a line the kernel will read soon.
The tiled CPU kernel (:mod:`lsr.indexing.sparse.search`) reads thousands of short posting segments per
query; the hardware prefetcher only catches each one after its first misses, so the kernel hints the
next segment's first lines while it adds the current one.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):  # noqa: ANN001, ANN201, ARG001
    """Hint that ``array[index]`` will be read soon (no bounds check, no effect on results)."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        data = context.make_array(array)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, array, data, [args[1]], wraparound=False, boundscheck=False
        )
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(function, [builder.bitcast(pointer, byte), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
