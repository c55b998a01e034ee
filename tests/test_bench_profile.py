"""bench/profile.py sorts perf's sampled stacks into the buckets the benchmark reports: the
parser is checked on stacks in the exact format ``perf script -F ip,sym,dso`` prints here."""

from __future__ import annotations

from bench.profile import BUCKETS, classify, parse_script

PWRITE_UNDER_PYTHON = """\
\tffffffff81591f1f copy_folio_from_iter_atomic ([kernel.kallsyms])
\tffffffff81592b8a generic_perform_write ([kernel.kallsyms])
\tffffffff815dfc04 ext4_buffered_write_iter ([kernel.kallsyms])
\tffffffff815e700a vfs_write ([kernel.kallsyms])
\tffffffff815ee25c __x64_sys_pwrite64 ([kernel.kallsyms])
\t          11a2b3 __libc_pwrite64 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t          1abd38 os_pwrite (/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0)
"""

SHA256 = """\
\t          29c2d0 [unknown] (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)
\t          29f911 SHA256_Update (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)
\t            671a EVP_update (/x/lib-dynload/_hashlib.cpython-311-x86_64-linux-gnu.so)
\t          165253 method_vectorcall_O (/x/lib/libpython3.11.so.1.0)
"""

TLS_DECRYPT = """\
\t          3a1b2c [unknown] (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)
\t           5c3d1 SSL_read_ex (/usr/lib/x86_64-linux-gnu/libssl.so.3)
\t            9a1c _ssl__SSLSocket_read (/x/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so)
"""

SOCKET_UNDER_TLS = """\
\tffffffff81b6ccb0 _copy_to_iter ([kernel.kallsyms])
\tffffffff81c1a2b3 tcp_recvmsg ([kernel.kallsyms])
\tffffffff81c0a1b2 sock_read_iter ([kernel.kallsyms])
\t          11a2b3 read (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t           5c3d1 SSL_read_ex (/usr/lib/x86_64-linux-gnu/libssl.so.3)
\t            9a1c _ssl__SSLSocket_read (/x/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so)
"""

EVAL = "\t           fd9c2 _PyEval_EvalFrameDefault (/x/lib/libpython3.11.so.1.0)\n"
MEMCPY = "\t          1a2b3c __memmove_avx_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)\n"


def frames(block: str) -> list[tuple[str, str]]:
    out = []
    for line in block.splitlines():
        _, rest = line.strip().split(" ", 1)
        sym, dso = rest.rsplit(" (", 1)
        out.append((sym, dso.rstrip(")")))
    return out


def test_each_stack_lands_in_the_bucket_of_what_it_did() -> None:
    assert classify(frames(PWRITE_UNDER_PYTHON)) == "kernel: write into the page cache"
    assert classify(frames(SHA256)) == "sha256"
    assert classify(frames(TLS_DECRYPT)) == "TLS (decrypt, record layer)"
    # kernel work is sorted by what it served, even under the TLS library
    assert classify(frames(SOCKET_UNDER_TLS)) == "kernel: socket receive"
    assert classify(frames(EVAL)) == "Python interpreter"
    assert classify(frames(MEMCPY)) == "copies (libc memcpy/memmove)"


def test_parse_script_counts_samples_separated_by_blank_lines() -> None:
    text = "\n".join([PWRITE_UNDER_PYTHON, SHA256, SHA256, TLS_DECRYPT, EVAL])
    counts = parse_script(text)
    assert counts == {"kernel: write into the page cache": 1, "sha256": 2,
                      "TLS (decrypt, record layer)": 1, "Python interpreter": 1}
    assert set(counts) <= set(BUCKETS)
