#!/usr/bin/env python3
"""The third oracle of the offload crate: a corpus of Ethernet frames built with scapy, each with
the facts the driver must compute for it, computed twice — once through scapy (its dissectors
decode the fields, its checksum code sums them: ``in4_chksum``, ``in6_chksum``, ``checksum``) and
once by this file's own byte-level code — and written only when both agree.

The corpus (``tests/corpus/offload.txt``) is committed, so the Rust test
(``offload/tests/scapy_corpus.rs``) needs no Python. This generator reproduces it byte for byte:
every random choice comes from seeded ``random.Random`` instances, and scapy's version is pinned
(README).

    pip install scapy==2.8.0
    python3 tests/scapy/gen_corpus.py            # writes tests/corpus/offload.txt
    python3 tests/scapy/gen_corpus.py --check    # regenerates in memory, compares, exit 1 on a diff

The rules both implementations follow are the ones issue 13 sets and the crate implements (see
the Rust docs of ``offload::layout``, ``offload::segment`` and ``offload::wire``); the format is
described in the corpus header.
"""

import argparse
import logging
import random
import socket
import struct
import sys
from pathlib import Path

import scapy
from scapy.config import conf
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_LSRR,
    IPOption_NOP,
    IPOption_RR,
    IPOption_Router_Alert,
    IPOption_SSRR,
    IPOption_Timestamp,
    in4_chksum,
    in4_pseudoheader,
)
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
    Pad1,
    PadN,
    in6_chksum,
    in6_pseudoheader,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

conf.verb = 0
# scapy warns when it falls back to the destination field for two source routes (a case the
# corpus has on purpose).
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

SCAPY_VERSION = "2.8.0"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "corpus" / "offload.txt"

# Microsoft's RSS verification key ("Verifying the RSS Hash Calculation").
RSS_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa"
)
# NET_PACKET_HASH_PROTOCOL_TYPE bits.
H_IPV4, H_IPV4_OPT, H_IPV6, H_IPV6_EXT, H_TCP, H_UDP = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
RSS_BASIC = H_IPV4 | H_IPV6 | H_TCP | H_UDP
RSS_ALL = RSS_BASIC | H_IPV4_OPT | H_IPV6_EXT

MAC_DST = "02:00:00:00:00:01"
MAC_SRC = "02:00:00:00:00:02"


class Disagree(Exception):
    """scapy and the generator's own code computed different facts: nothing is written."""


# ==============================================================================================
# The generator's own code: plain byte offsets, its own one's-complement sum and Toeplitz.
# ==============================================================================================


def own_sum(data):
    """Folded one's-complement sum of big-endian 16-bit words (odd length: zero padded)."""
    if len(data) % 2:
        data = data + b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def own_toeplitz(key, data):
    """Toeplitz hash: for each set input bit i, XOR the 32 key bits starting at bit i."""
    h = 0
    bits = len(key) * 8
    for i, byte in enumerate(data):
        for j in range(8):
            if byte & (0x80 >> j):
                p = i * 8 + j
                w = 0
                for k in range(32):
                    q = p + k
                    bit = (key[q // 8] >> (7 - q % 8)) & 1 if q < bits else 0
                    w = (w << 1) | bit
                h ^= w
    return h


def be16(b, at):
    return (b[at] << 8) | b[at + 1]


class OwnParse:
    """The layout rules of offload::Layout::parse_prefix, on plain bytes."""

    def __init__(self, b):
        self.b = b
        self.l2 = 0
        self.l3 = None  # "v4", "v4opt", "v6", "v6ext"
        self.l3_len = 0
        self.proto = None
        self.fragmented = False
        self.l4 = "none"  # "tcp", "udp", "frag", "other", "none"
        self.l4_len = 0
        self.stopped = False  # a header the frame announces did not parse
        self.routing_dst = None
        self._parse()

    def _parse(self):
        b = self.b
        if len(b) < 14:
            self.stopped = True
            return
        at = 12
        ty = be16(b, at)
        at = 14
        for _ in range(2):
            if ty not in (0x8100, 0x88A8):
                break
            if len(b) < at + 4:
                self.stopped = True
                return
            ty = be16(b, at + 2)
            at += 4
        self.l2 = at
        later = False
        if ty == 0x0800:
            ip = b[at:]
            if len(ip) < 20 or ip[0] >> 4 != 4:
                self.stopped = True
                return
            hl = (ip[0] & 0xF) * 4
            if hl < 20 or len(ip) < hl:
                self.stopped = True
                return
            self.l3 = "v4opt" if hl > 20 else "v4"
            self.l3_len = hl
            self.proto = ip[9]
            frag = be16(ip, 6)
            off = (frag & 0x1FFF) * 8
            self.fragmented = bool(frag & 0x2000) or off != 0
            later = off != 0
        elif ty == 0x86DD:
            ip = b[at:]
            if len(ip) < 40 or ip[0] >> 4 != 6:
                self.stopped = True
                return
            nxt = ip[6]
            pos = 40
            frag = None
            rdst = None
            done = False
            for _ in range(9):
                if nxt in (0, 43, 60, 51):
                    if len(ip) < pos + 2:
                        self.stopped = True
                        return
                    size = (ip[pos + 1] + 2) * 4 if nxt == 51 else (ip[pos + 1] + 1) * 8
                elif nxt == 44:
                    if len(ip) < pos + 8:
                        self.stopped = True
                        return
                    size = 8
                    w = be16(ip, pos + 2)
                    frag = (w & 0xFFF8, bool(w & 1))
                else:
                    done = True
                    break
                if len(ip) < pos + size:
                    self.stopped = True
                    return
                if nxt == 0 and pos != 40:
                    self.stopped = True
                    return
                if nxt == 43:
                    d = own_routing_dst(ip[pos : pos + size])
                    if d is not None:
                        rdst = d
                nxt = ip[pos]
                pos += size
                if frag is not None and frag[0] != 0:
                    done = True
                    break
            if not done:
                self.stopped = True
                return
            if pos > 511:
                self.stopped = True
                return
            self.l3 = "v6ext" if pos > 40 else "v6"
            self.l3_len = pos
            self.proto = nxt
            self.fragmented = frag is not None and (frag[0] != 0 or frag[1])
            later = frag is not None and frag[0] != 0
            self.routing_dst = rdst
        else:
            return
        if later:
            self.l4 = "frag"
            return
        l4 = b[self.l2 + self.l3_len :]
        ok = None
        if self.proto == 6:
            if len(l4) >= 20 and (l4[12] >> 4) >= 5 and len(l4) >= (l4[12] >> 4) * 4:
                ok = ("tcp", (l4[12] >> 4) * 4)
        elif self.proto == 17:
            if len(l4) >= 8:
                ok = ("udp", 8)
        else:
            ok = ("frag", 0) if self.fragmented else ("other", 0)
        if ok is not None:
            self.l4, self.l4_len = ok
        elif self.fragmented:
            self.l4 = "frag"
        else:
            self.stopped = True

    @property
    def l3o(self):
        return self.l2

    @property
    def l4o(self):
        return self.l2 + self.l3_len

    def final_dst(self):
        ip = self.b[self.l3o :]
        if self.l3 in ("v4", "v4opt"):
            return own_ipv4_final_dst(ip[: self.l3_len])
        return self.routing_dst if self.routing_dst is not None else ip[24:40]


def own_routing_dst(rh):
    ext_len, ty, left = rh[1], rh[2], rh[3]
    if left == 0 or ext_len < 2:
        return None
    if ty in (0, 2):
        at = 8 + 16 * (ext_len // 2 - 1)
    elif ty == 4:
        at = 8
    else:
        return None
    return rh[at : at + 16]


def own_ipv4_final_dst(hdr):
    dst = hdr[16:20]
    opts = hdr[20:]
    at = 0
    routes = 0
    route = None
    while at < len(opts):
        ty = opts[at]
        if ty == 0:
            break
        if ty == 1:
            at += 1
            continue
        if at + 1 >= len(opts):
            return dst
        ln = opts[at + 1]
        if ln < 2 or at + ln > len(opts):
            return dst
        if ty in (131, 137):
            routes += 1
            ptr = opts[at + 2] if ln > 2 else 0
            data = opts[at + 3 : at + ln]
            n = len(data) // 4
            if n > 0 and ptr <= ln:
                route = data[4 * (n - 1) : 4 * n]
        at += ln
    return route if routes == 1 and route is not None else dst


def own_add(a, b):
    s = a + b
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def own_pseudo(p, length):
    """Folded pseudo-header sum over the final destination."""
    ip = p.b[p.l3o :]
    if p.l3 in ("v4", "v4opt"):
        ph = ip[12:16] + p.final_dst() + bytes([0, p.proto]) + struct.pack("!H", length)
    else:
        ph = ip[8:24] + p.final_dst() + struct.pack("!I", length) + bytes([0, 0, 0, p.proto])
    return own_sum(ph)


def own_facts(b):
    p = OwnParse(b)
    f = {}
    f["layout"] = own_layout_text(p)
    # IPv4 header checksum: RX verdict and what the TX path computes.
    if p.l3 in ("v4", "v4opt"):
        hdr = b[p.l3o : p.l3o + p.l3_len]
        f["ipcsum"] = "valid" if own_sum(hdr) == 0xFFFF else "invalid"
        z = hdr[:10] + b"\0\0" + hdr[12:]
        f["ipfill"] = "%04x" % (0xFFFF - own_sum(z))
    else:
        f["ipcsum"] = "notchecked"
        f["ipfill"] = "refused" if (p.stopped and p.l3 is None) else "na"
    f.update(own_l4(p))
    f["rss"] = own_rss(p, RSS_BASIC)
    f["rssall"] = own_rss(p, RSS_ALL)
    return f


def own_layout_text(p):
    if p.l2 == 0:
        return "none/0 none/0 none/0"
    l3 = p.l3 or "none"
    l4 = p.l4 if p.l3 else "none"
    return "eth/%d %s/%d %s/%d" % (p.l2, l3, p.l3_len, l4, p.l4_len if p.l3 else 0)


def own_coverage(p):
    """(ip_end, covered) or None when the lengths do not hold together."""
    b = p.b
    ip = b[p.l3o :]
    claimed = be16(ip, 2) if p.l3 in ("v4", "v4opt") else 40 + be16(ip, 4)
    if claimed < p.l3_len + p.l4_len:
        return None
    end = p.l3o + claimed
    payload = end - p.l4o
    if p.l4 == "tcp":
        return end, payload
    ulen = be16(b, p.l4o + 4)
    if ulen < 8 or ulen > payload:
        return end, None
    return end, ulen


def own_l4(p):
    b = p.b
    f = {"l4csum": "notchecked", "fill": "err", "tx": "refused"}
    transport = p.l3 is not None and not p.fragmented and p.l4 in ("tcp", "udp")
    if not transport:
        return f
    field = p.l4o + (16 if p.l4 == "tcp" else 6)
    cov = own_coverage(p)
    # TX (tx::prepare with the L4 checksum asked): from the headers, against the frame length.
    if cov is not None and cov[1] is not None and cov[0] <= len(b):
        end, covered = cov
        if p.l4o + covered == len(b):
            seed = own_pseudo(p, covered)
            f["tx"] = "needs/%d/%d/%04x" % (p.l4o, field - p.l4o, seed)
        else:
            f["tx"] = "software"
    if cov is None or cov[0] > len(b) or cov[1] is None:
        return f
    end, covered = cov
    seg = b[p.l4o : p.l4o + covered]
    # RX verdict.
    if p.l4 == "udp" and seg[6:8] == b"\0\0":
        f["l4csum"] = "invalid" if p.l3 in ("v6", "v6ext") else "notchecked"
    else:
        s = own_add(own_sum(seg), own_pseudo(p, covered))
        f["l4csum"] = "valid" if s == 0xFFFF else "invalid"
    # The software checksum.
    k = field - p.l4o
    z = seg[:k] + b"\0\0" + seg[k + 2 :]
    c = 0xFFFF - own_add(own_sum(z), own_pseudo(p, covered))
    if p.l4 == "udp" and c == 0:
        c = 0xFFFF
    f["fill"] = "%04x" % c
    return f


def own_rss(p, enabled):
    if p.l2 == 0 or p.l3 is None:
        return "none"
    ip = p.b[p.l3o :]
    if p.l3 in ("v4", "v4opt"):
        opts = p.l3 == "v4opt"
        if opts and not enabled & H_IPV4_OPT:
            return "none"
        inp = ip[12:20]
        ty = H_IPV4 | (H_IPV4_OPT if opts else 0)
        if not enabled & H_IPV4:
            return "none"
    else:
        ext = p.l3 == "v6ext"
        if ext and not enabled & H_IPV6_EXT:
            return "none"
        inp = ip[8:40]
        ty = H_IPV6 | (H_IPV6_EXT if ext else 0)
        if not enabled & H_IPV6:
            return "none"
    l4t = {"tcp": H_TCP, "udp": H_UDP}.get(p.l4, 0) if not p.fragmented else 0
    if l4t and enabled & l4t:
        inp = inp + p.b[p.l4o : p.l4o + 4]
        ty |= l4t
    return "%08x/%02x" % (own_toeplitz(RSS_KEY, inp), ty)


# ==============================================================================================
# The scapy side: scapy's dissectors decode each header, scapy's checksum code sums.
# ==============================================================================================


def sc_toeplitz(key, data):
    """Toeplitz hash as a big-integer window slide (a second, separately written form)."""
    k = int.from_bytes(key, "big")
    kbits = len(key) * 8
    d = int.from_bytes(data, "big")
    dbits = len(data) * 8
    h = 0
    for i in range(dbits):
        if (d >> (dbits - 1 - i)) & 1:
            shift = kbits - 32 - i
            w = (k >> shift) if shift >= 0 else (k << -shift)
            h ^= w & 0xFFFFFFFF
    return h


def sc_fold(data):
    """scapy's checksum() is the complement; the folded sum is its complement back."""
    return (~scapy_checksum(data)) & 0xFFFF


class ScapyParse:
    """The same layout rules, with each header decoded by its scapy class."""

    def __init__(self, b):
        self.b = b
        self.l2 = 0
        self.l3 = None
        self.l3_len = 0
        self.proto = None
        self.fragmented = False
        self.l4 = "none"
        self.l4_len = 0
        self.stopped = False
        self.ip = None  # scapy IP or the IPv6 chain (list of layers)
        self.chain = []
        self.l4pkt = None
        self._parse()

    def _parse(self):
        b = self.b
        # scapy builds a default packet from no bytes at all (and raises for a few): a layer
        # counts as decoded only when its bytes are there.
        try:
            if len(b) < 14:
                raise ValueError("no Ethernet header")
            e = Ether(b[:14])
        except Exception:
            self.stopped = True
            return
        # scapy decodes a type field under 0x0600 as an 802.3 length (Dot3): not IP either.
        ty = e.type if hasattr(e, "type") else e.len
        at = 14
        for _ in range(2):
            if ty not in (0x8100, 0x88A8):
                break
            if len(b) < at + 4:
                self.stopped = True
                return
            tag = (Dot1Q if ty == 0x8100 else Dot1AD)(b[at : at + 4])
            ty = tag.type
            at += 4
        self.l2 = at
        later = False
        rest = b[at:]
        if ty == 0x0800:
            try:
                ip = IP(rest) if rest else None
                if ip is None:
                    raise ValueError("no IPv4 header")
            except Exception:
                self.stopped = True
                return
            if ip.version != 4 or ip.ihl < 5 or len(rest) < ip.ihl * 4:
                self.stopped = True
                return
            self.ip = IP(rest[: ip.ihl * 4])
            self.l3_len = ip.ihl * 4
            self.l3 = "v4opt" if ip.ihl > 5 else "v4"
            self.proto = ip.proto
            self.fragmented = bool(ip.flags.MF) or ip.frag != 0
            later = ip.frag != 0
        elif ty == 0x86DD:
            try:
                if len(rest) < 40:
                    raise ValueError("no IPv6 header")
                ip6 = IPv6(rest[:40])
            except Exception:
                self.stopped = True
                return
            if ip6.version != 6:
                self.stopped = True
                return
            ip6.remove_payload()
            chain = [ip6]
            nh = ip6.nh
            pos = 40
            frag = None
            done = False
            classes = {
                0: IPv6ExtHdrHopByHop,
                43: None,
                44: IPv6ExtHdrFragment,
                60: IPv6ExtHdrDestOpt,
                51: AH,
            }
            for _ in range(9):
                if nh not in classes:
                    done = True
                    break
                cls = classes[nh]
                if nh == 43:
                    cls = (
                        IPv6ExtHdrSegmentRouting
                        if len(rest) > pos + 2 and rest[pos + 2] == 4
                        else IPv6ExtHdrRouting
                    )
                try:
                    if len(rest) <= pos:
                        raise ValueError("no extension header")
                    h = cls(rest[pos:])
                except Exception:
                    self.stopped = True
                    return
                if nh == 51:
                    size = (h.payloadlen + 2) * 4
                elif nh == 44:
                    size = 8
                else:
                    size = (h.len + 1) * 8
                if len(rest) < pos + size:
                    self.stopped = True
                    return
                if nh == 0 and pos != 40:
                    self.stopped = True
                    return
                h = cls(rest[pos : pos + size])
                h.remove_payload()
                chain.append(h)
                if nh == 44:
                    frag = (h.offset * 8, bool(h.m))
                nh = h.nh
                pos += size
                if frag is not None and frag[0] != 0:
                    done = True
                    break
            if not done or pos > 511:
                self.stopped = True
                return
            self.chain = chain
            self.l3_len = pos
            self.l3 = "v6ext" if pos > 40 else "v6"
            self.proto = nh
            self.fragmented = frag is not None and (frag[0] != 0 or frag[1])
            later = frag is not None and frag[0] != 0
        else:
            return
        if later:
            self.l4 = "frag"
            return
        l4 = b[self.l2 + self.l3_len :]
        ok = None
        try:
            if not l4 and self.proto in (6, 17):
                raise ValueError("no transport header")
            if self.proto == 6:
                t = TCP(l4)
                if t.dataofs >= 5 and len(l4) >= t.dataofs * 4:
                    ok = ("tcp", t.dataofs * 4)
            elif self.proto == 17:
                UDP(l4)
                if len(l4) >= 8:
                    ok = ("udp", 8)
            else:
                ok = ("frag", 0) if self.fragmented else ("other", 0)
        except Exception:
            ok = None
        if ok is not None:
            self.l4, self.l4_len = ok
        elif self.fragmented:
            self.l4 = "frag"
        else:
            self.stopped = True

    @property
    def l4o(self):
        return self.l2 + self.l3_len

    def v4(self):
        return self.l3 in ("v4", "v4opt")

    def pseudo_ip(self):
        """The IP layer for scapy's in4_pseudoheader: a copy whose source route scapy may use.
        scapy takes the last router of a route option whatever its pointer; a route that is
        used up (pointer > length: the datagram has arrived, RFC 1122 §3.2.1.8(c)) is taken out
        of the copy, so scapy uses the destination field, as the rule says."""
        u = self.ip.copy()
        u.len = None
        routes = [o for o in u.options if isinstance(o, (IPOption_LSRR, IPOption_SSRR))]
        if len(routes) == 1 and routes[0].pointer > routes[0].length:
            u.options = [o for o in u.options if o is not routes[0]]
        return u

    def upper(self, seg):
        """An upper-layer instance over the IPv6 chain, for in6_chksum / in6_pseudoheader."""
        pkt = self.chain[0].copy()
        for h in self.chain[1:]:
            pkt = pkt / h.copy()
        cls = TCP if self.proto == 6 else UDP
        pkt = pkt / cls(seg)
        return pkt[cls]

    def pseudo(self, covered, seg):
        if self.v4():
            return sc_fold(in4_pseudoheader(self.proto, self.pseudo_ip(), covered))
        return sc_fold(bytes(in6_pseudoheader(self.proto, self.upper(seg), covered)))

    def l4_checksum(self, seg):
        """scapy's transport checksum of `seg` (field as it is)."""
        if self.v4():
            return in4_chksum(self.proto, self.pseudo_ip(), seg)
        return in6_chksum(self.proto, self.upper(seg), seg)


def sc_facts(b):
    p = ScapyParse(b)
    f = {}
    if p.l2 == 0:
        f["layout"] = "none/0 none/0 none/0"
    elif p.l3 is None:
        f["layout"] = "eth/%d none/0 none/0" % p.l2
    else:
        f["layout"] = "eth/%d %s/%d %s/%d" % (p.l2, p.l3, p.l3_len, p.l4, p.l4_len)
    if p.v4():
        hdr = bytes(b[p.l2 : p.l2 + p.l3_len])
        f["ipcsum"] = "valid" if scapy_checksum(hdr) == 0 else "invalid"
        z = hdr[:10] + b"\0\0" + hdr[12:]
        f["ipfill"] = "%04x" % scapy_checksum(z)
    else:
        f["ipcsum"] = "notchecked"
        f["ipfill"] = "refused" if (p.stopped and p.l3 is None) else "na"
    f.update(sc_l4(p))
    f["rss"] = sc_rss(p, RSS_BASIC)
    f["rssall"] = sc_rss(p, RSS_ALL)
    return f


def sc_l4(p):
    b = p.b
    f = {"l4csum": "notchecked", "fill": "err", "tx": "refused"}
    if p.l3 is None or p.fragmented or p.l4 not in ("tcp", "udp"):
        return f
    if p.v4():
        claimed = p.ip.len
    else:
        claimed = 40 + p.chain[0].plen
    if claimed < p.l3_len + p.l4_len:
        return f
    end = p.l2 + claimed
    payload = end - p.l4o
    if p.l4 == "tcp":
        covered = payload
    else:
        ulen = UDP(b[p.l4o : p.l4o + 8]).len
        covered = ulen if 8 <= ulen <= payload else None
    if covered is None:
        return f
    off = 16 if p.l4 == "tcp" else 6
    if end > len(b):
        return f
    if p.l4o + covered == len(b):
        seg = b[p.l4o : p.l4o + covered]
        f["tx"] = "needs/%d/%d/%04x" % (p.l4o, off, p.pseudo(covered, seg))
    else:
        f["tx"] = "software"
    seg = bytes(b[p.l4o : p.l4o + covered])
    if p.l4 == "udp" and UDP(seg[:8]).chksum == 0:
        f["l4csum"] = "notchecked" if p.v4() else "invalid"
    else:
        f["l4csum"] = "valid" if p.l4_checksum(seg) == 0 else "invalid"
    z = seg[:off] + b"\0\0" + seg[off + 2 :]
    c = p.l4_checksum(z)
    if p.l4 == "udp" and c == 0:
        c = 0xFFFF
    f["fill"] = "%04x" % c
    return f


def sc_rss(p, enabled):
    if p.l2 == 0 or p.l3 is None:
        return "none"
    if p.v4():
        opts = p.l3 == "v4opt"
        if (opts and not enabled & H_IPV4_OPT) or not enabled & H_IPV4:
            return "none"
        inp = socket.inet_pton(socket.AF_INET, p.ip.src) + socket.inet_pton(
            socket.AF_INET, p.ip.dst
        )
        ty = H_IPV4 | (H_IPV4_OPT if opts else 0)
    else:
        ext = p.l3 == "v6ext"
        if (ext and not enabled & H_IPV6_EXT) or not enabled & H_IPV6:
            return "none"
        v6 = p.chain[0]
        inp = socket.inet_pton(socket.AF_INET6, v6.src) + socket.inet_pton(socket.AF_INET6, v6.dst)
        ty = H_IPV6 | (H_IPV6_EXT if ext else 0)
    l4t = 0 if p.fragmented else {"tcp": H_TCP, "udp": H_UDP}.get(p.l4, 0)
    if l4t and enabled & l4t:
        cls = TCP if p.l4 == "tcp" else UDP
        h = cls(p.b[p.l4o :])
        inp += struct.pack("!HH", h.sport, h.dport)
        ty |= l4t
    return "%08x/%02x" % (sc_toeplitz(RSS_KEY, inp), ty)


def facts(b):
    mine, theirs = own_facts(b), sc_facts(b)
    if mine != theirs:
        raise Disagree("frame %s\n  own   %s\n  scapy %s" % (b.hex(), mine, theirs))
    return mine


# ==============================================================================================
# Segmentation (LSO/USO in software): every expected segment, built twice.
# ==============================================================================================


def own_segments(b, mss):
    """Segments as offload::segment::Segmenter writes them, and each one's pseudo-header seed."""
    p = OwnParse(b)
    hdr = p.l4o + p.l4_len
    payload = b[hdr:]
    n = -(-len(payload) // mss)
    out = []
    for i in range(n):
        chunk = payload[i * mss : (i + 1) * mss]
        s = bytearray(b[:hdr] + chunk)
        total = len(s)
        o3, o4 = p.l3o, p.l4o
        if p.l3 in ("v4", "v4opt"):
            s[o3 + 2 : o3 + 4] = struct.pack("!H", total - o3)
            s[o3 + 4 : o3 + 6] = struct.pack("!H", (be16(b, o3 + 4) + i) & 0xFFFF)
            s[o3 + 10 : o3 + 12] = b"\0\0"
            s[o3 + 10 : o3 + 12] = struct.pack("!H", 0xFFFF - own_sum(bytes(s[o3:o4])))
        else:
            s[o3 + 4 : o3 + 6] = struct.pack("!H", total - o3 - 40)
        l4len = total - o4
        seed = own_pseudo(p, l4len)
        if p.l4 == "tcp":
            seq = (struct.unpack("!I", b[o4 + 4 : o4 + 8])[0] + i * mss) & 0xFFFFFFFF
            s[o4 + 4 : o4 + 8] = struct.pack("!I", seq)
            fl = s[o4 + 13]
            if i != 0:
                fl &= ~0x80 & 0xFF
            if i + 1 != n:
                fl &= ~0x09 & 0xFF
            s[o4 + 13] = fl
            field = o4 + 16
        else:
            s[o4 + 4 : o4 + 6] = struct.pack("!H", l4len)
            field = o4 + 6
        s[field : field + 2] = b"\0\0"
        c = 0xFFFF - own_add(own_sum(bytes(s[o4:])), seed)
        if p.l4 == "udp" and c == 0:
            c = 0xFFFF
        s[field : field + 2] = struct.pack("!H", c)
        out.append((bytes(s), seed))
    return out


def sc_segments(b, mss):
    """The same segments, each a scapy packet rebuilt from the dissected frame with the new
    payload, sequence number, identification and flags — lengths and checksums left to scapy."""
    whole = Ether(b)
    l4cls = TCP if TCP in whole else UDP
    payload = bytes(whole[l4cls].payload)
    n = -(-len(payload) // mss)
    out = []
    for i in range(n):
        q = Ether(b)
        if IP in q:
            q[IP].len = None
            q[IP].chksum = None
            q[IP].id = (q[IP].id + i) & 0xFFFF
        else:
            q[IPv6].plen = None
        t = q[l4cls]
        t.chksum = None
        if l4cls is TCP:
            t.seq = (t.seq + i * mss) & 0xFFFFFFFF
            fl = int(t.flags)
            if i != 0:
                fl &= ~0x80
            if i + 1 != n:
                fl &= ~0x09
            t.flags = fl
        else:
            t.len = None
        t.remove_payload()
        t.add_payload(Raw(payload[i * mss : (i + 1) * mss]))
        seg = bytes(q)
        sp = ScapyParse(seg)
        l4 = seg[sp.l4o :]
        out.append((seg, sp.pseudo(len(l4), l4)))
    return out


def lso_header(b, mss):
    """What tx::prepare writes for LSO/USO on this frame: gso_type/hdr_len/csum_start/offset/seed."""
    p = OwnParse(b)
    sp = ScapyParse(b)
    if p.l4 == "tcp":
        ty = 1 if p.l3 in ("v4", "v4opt") else 4
        if b[p.l4o + 13] & 0x80:
            ty |= 0x80
        off = 16
    else:
        ty, off = 5, 6
    l4 = b[p.l4o :]
    seed = own_pseudo(p, len(l4))
    if seed != sp.pseudo(len(l4), l4):
        raise Disagree("LSO seed of %s" % b.hex())
    return "%d/%d/%d/%d/%04x" % (ty, p.l4o + p.l4_len, p.l4o, off, seed)


def segment_case(b, mss):
    mine, theirs = own_segments(b, mss), sc_segments(b, mss)
    if mine != theirs:
        for i, (x, y) in enumerate(zip(mine, theirs)):
            if x != y:
                raise Disagree(
                    "segment %d of %s (mss %d)\n  own   %s %04x\n  scapy %s %04x"
                    % (i, b.hex(), mss, x[0].hex(), x[1], y[0].hex(), y[1])
                )
        raise Disagree("segment count of %s" % b.hex())
    return lso_header(b, mss), mine


# ==============================================================================================
# The frames.
# ==============================================================================================


class Gen:
    """Deterministic frame builders (scapy fills lengths and checksums of well-formed frames)."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def v4addr(self):
        r = self.r
        return "%d.%d.%d.%d" % (
            r.choice([10, 172, 192, 198, 203]),
            r.randrange(256),
            r.randrange(256),
            r.randrange(1, 255),
        )

    def v6addr(self):
        r = self.r
        return "2001:db8:%x:%x::%x" % (
            r.randrange(0x10000),
            r.randrange(0x10000),
            r.randrange(1, 0x10000),
        )

    def payload(self, n):
        return bytes(self.r.randrange(256) for _ in range(n))

    def port(self):
        return self.r.randrange(1, 65536)

    def l2(self, tags=()):
        p = Ether(dst=MAC_DST, src=MAC_SRC)
        for i, t in enumerate(tags):
            vid = self.r.randrange(4096)
            prio = self.r.randrange(8)
            if t == 0x88A8:
                p = p / Dot1AD(vlan=vid, prio=prio)
            else:
                p = p / Dot1Q(vlan=vid, prio=prio, id=self.r.randrange(2))
        return p

    def ipv4(self, proto=None, options=(), frag=0, flags="DF", dst=None):
        kw = dict(
            src=self.v4addr(),
            dst=dst or self.v4addr(),
            id=self.r.randrange(65536),
            ttl=self.r.randrange(1, 256),
            tos=self.r.randrange(256),
            flags=flags,
            frag=frag,
        )
        if options:
            kw["options"] = list(options)
        if proto is not None:
            kw["proto"] = proto
        return IP(**kw)

    def ipv6(self, nh=None):
        kw = dict(
            src=self.v6addr(),
            dst=self.v6addr(),
            hlim=self.r.randrange(1, 256),
            tc=self.r.randrange(256),
            fl=self.r.randrange(1 << 20),
        )
        if nh is not None:
            kw["nh"] = nh
        return IPv6(**kw)

    def tcp(self, options=(), flags="PA"):
        return TCP(
            sport=self.port(),
            dport=self.port(),
            seq=self.r.randrange(1 << 32),
            ack=self.r.randrange(1 << 32),
            flags=flags,
            window=self.r.randrange(65536),
            options=list(options),
        )

    def udp(self):
        return UDP(sport=self.port(), dport=self.port())

    def tcp_options(self):
        r = self.r
        sets = [
            [],
            [("MSS", 1460)],
            [("MSS", 536), ("NOP", None), ("WScale", 7)],
            [("SAckOK", b""), ("NOP", None), ("NOP", None)],
            [
                ("NOP", None),
                ("NOP", None),
                ("Timestamp", (r.randrange(1 << 32), r.randrange(1 << 32))),
            ],
            [("NOP", None), ("NOP", None), ("SAck", (r.randrange(1 << 32), r.randrange(1 << 32)))],
            [("MSS", 1440), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 14)],
        ]
        return r.choice(sets)


def frame(p):
    return bytes(p)


def routing0(g, n, left):
    addrs = [g.v6addr() for _ in range(n)]
    return IPv6ExtHdrRouting(type=0, segleft=left, addresses=addrs)


def routing2(g, left):
    return IPv6ExtHdrRouting(type=2, segleft=left, addresses=[g.v6addr()])


def srh(g, n, left):
    return IPv6ExtHdrSegmentRouting(
        segleft=left, lastentry=n - 1, addresses=[g.v6addr() for _ in range(n)]
    )


def padding(n):
    """Options filling n bytes: PadN options of at most 257 bytes (Pad1 for a lone byte)."""
    out = []
    while n > 0:
        if n == 1:
            out.append(Pad1())
            break
        take = min(n, 257)
        if n - take == 1:
            take -= 2
        out.append(PadN(optdata=bytes(take - 2)))
        n -= take
    return out


def hbh(g, words=0):
    return IPv6ExtHdrHopByHop(options=padding(6 + 8 * words))


def dest(g, words=0):
    return IPv6ExtHdrDestOpt(options=padding(6 + 8 * words))


def ah(g):
    return AH(
        payloadlen=4, spi=g.r.randrange(1, 1 << 32), seq=g.r.randrange(1 << 32), icv=g.payload(12)
    )


def atomic(g):
    return IPv6ExtHdrFragment(offset=0, m=0, id=g.r.randrange(1 << 32))


def upper(g, kind, n):
    if kind == "tcp":
        return g.tcp(g.tcp_options()) / Raw(g.payload(n))
    if kind == "udp":
        return g.udp() / Raw(g.payload(n))
    return None


def group_plain():
    g = Gen(1)
    out = []
    for fam in ("v4", "v6"):
        for kind in ("tcp", "udp", "icmp"):
            for n in (0, 1, 2, 3, 5, 8, 17, 40, 100, 333):
                if kind == "icmp":
                    top = (
                        ICMP(id=g.r.randrange(65536))
                        if fam == "v4"
                        else ICMPv6EchoRequest(id=g.r.randrange(65536))
                    ) / Raw(g.payload(n))
                else:
                    top = upper(g, kind, n)
                ip = g.ipv4() if fam == "v4" else g.ipv6()
                out.append(frame(g.l2() / ip / top))
    for _ in range(110):
        fam = g.r.choice(("v4", "v6"))
        kind = g.r.choice(("tcp", "udp"))
        ip = g.ipv4(flags=g.r.choice(["", "DF"])) if fam == "v4" else g.ipv6()
        out.append(frame(g.l2() / ip / upper(g, kind, g.r.randrange(0, 24))))
    return out


def group_vlan():
    g = Gen(2)
    out = []
    for tags in ((0x8100,), (0x88A8,), (0x88A8, 0x8100), (0x8100, 0x8100)):
        for fam in ("v4", "v6"):
            for kind in ("tcp", "udp"):
                for n in (0, 7, 30):
                    ip = g.ipv4() if fam == "v4" else g.ipv6()
                    out.append(frame(g.l2(tags) / ip / upper(g, kind, n)))
    for _ in range(70):
        tags = g.r.choice(((0x8100,), (0x88A8, 0x8100), (0x8100, 0x8100), (0x88A8,)))
        ip = g.ipv4() if g.r.random() < 0.5 else g.ipv6()
        out.append(frame(g.l2(tags) / ip / upper(g, g.r.choice(("tcp", "udp")), g.r.randrange(20))))
    # A third tag is not parsed as one: its TPID is the EtherType after two tags (layer 2 only).
    for _ in range(8):
        out.append(frame(g.l2((0x88A8, 0x8100, 0x8100)) / g.ipv4() / upper(g, "tcp", 4)))
    for tags in ((0x8100,), (0x88A8, 0x8100)):
        for op in (1, 2):
            out.append(frame(g.l2(tags) / ARP(op=op, psrc=g.v4addr(), pdst=g.v4addr())))
    return out


def group_ipv4_options():
    g = Gen(3)
    out = []

    def routers(n):
        return [g.v4addr() for _ in range(n)]

    def option_sets():
        return [
            ("nop4", [IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP()]),
            ("router-alert", [IPOption_Router_Alert()]),
            ("rr", [IPOption_RR(routers=routers(3))]),
            ("rr-full", [IPOption_RR(routers=routers(9), pointer=40)]),
            ("timestamp", [IPOption_Timestamp(flg=0, timestamp=g.r.randrange(1 << 32))]),
            ("lsrr1", [IPOption_LSRR(routers=routers(1))]),
            ("lsrr3", [IPOption_LSRR(routers=routers(3))]),
            ("lsrr3-mid", [IPOption_LSRR(routers=routers(3), pointer=8)]),
            ("lsrr3-last", [IPOption_LSRR(routers=routers(3), pointer=12)]),
            ("lsrr3-done", [IPOption_LSRR(routers=routers(3), pointer=16)]),
            ("ssrr2", [IPOption_SSRR(routers=routers(2))]),
            ("ssrr2-done", [IPOption_SSRR(routers=routers(2), pointer=12)]),
            ("nop-lsrr", [IPOption_NOP(), IPOption_LSRR(routers=routers(2))]),
            ("ra-ssrr", [IPOption_Router_Alert(), IPOption_SSRR(routers=routers(1))]),
            ("two-routes", [IPOption_LSRR(routers=routers(1)), IPOption_SSRR(routers=routers(1))]),
            ("lsrr9", [IPOption_LSRR(routers=routers(9))]),
            ("nop40", [IPOption_NOP()] * 40),
        ]

    for name, opts in option_sets():
        for kind in ("tcp", "udp"):
            for n in (0, 9, 31):
                out.append(frame(g.l2() / g.ipv4(options=opts) / upper(g, kind, n)))
    for _ in range(50):
        name, opts = g.r.choice(option_sets())
        tags = g.r.choice(((), (0x8100,), (0x88A8, 0x8100)))
        out.append(
            frame(
                g.l2(tags)
                / g.ipv4(options=opts)
                / upper(g, g.r.choice(("tcp", "udp")), g.r.randrange(16))
            )
        )
    return out


def group_ipv6_ext():
    g = Gen(4)
    out = []
    chains = [
        lambda: [hbh(g)],
        lambda: [hbh(g, 1)],
        lambda: [dest(g)],
        lambda: [dest(g, 2)],
        lambda: [routing0(g, 1, 1)],
        lambda: [routing0(g, 2, 2)],
        lambda: [routing0(g, 3, 1)],
        lambda: [routing0(g, 3, 0)],
        lambda: [routing2(g, 1)],
        lambda: [routing2(g, 0)],
        lambda: [srh(g, 1, 1)],
        lambda: [srh(g, 2, 1)],
        lambda: [srh(g, 3, 2)],
        lambda: [srh(g, 3, 0)],
        lambda: [IPv6ExtHdrRouting(type=3, segleft=0, addresses=[g.v6addr()])],
        lambda: [atomic(g)],
        lambda: [ah(g)],
        lambda: [hbh(g), dest(g)],
        lambda: [hbh(g), routing0(g, 2, 1), dest(g)],
        lambda: [dest(g), routing2(g, 1)],
        lambda: [hbh(g), dest(g), srh(g, 2, 1), dest(g, 1)],
        lambda: [hbh(g), atomic(g), dest(g)],
        lambda: [routing0(g, 1, 1), routing2(g, 1)],
        lambda: [hbh(g), ah(g), dest(g)],
        lambda: [hbh(g)] + [dest(g) for _ in range(7)],
    ]
    for make in chains:
        for kind in ("tcp", "udp"):
            for n in (0, 11):
                exts = make()
                p = g.l2() / g.ipv6()
                for e in exts:
                    p = p / e
                out.append(frame(p / upper(g, kind, n)))
    for _ in range(120):
        exts = g.r.choice(chains)()
        p = g.l2(g.r.choice(((), (0x8100,)))) / g.ipv6()
        for e in exts:
            p = p / e
        out.append(frame(p / upper(g, g.r.choice(("tcp", "udp")), g.r.randrange(12))))
    # ICMPv6 and "no next header" after extensions.
    for exts in ([hbh(g)], [dest(g), routing0(g, 1, 1)]):
        p = g.l2() / g.ipv6()
        for e in exts:
            p = p / e
        out.append(frame(p / ICMPv6EchoRequest(id=g.r.randrange(65536))))
    out.append(
        frame(g.l2() / g.ipv6() / IPv6ExtHdrDestOpt(nh=59, options=[PadN(optdata=bytes(4))]))
    )
    # Chains the parser refuses (layer 2 only): nine extension headers; hop-by-hop not first;
    # more than NET_PACKET_LAYOUT's 511 bytes of layer 3.
    for make in (
        lambda: [hbh(g)] + [dest(g) for _ in range(8)],
        lambda: [dest(g), hbh(g)],
        lambda: [dest(g, 58)],
        lambda: [dest(g, 57)],
    ):
        for kind in ("tcp", "udp"):
            p = g.l2() / g.ipv6()
            for e in make():
                p = p / e
            out.append(frame(p / upper(g, kind, 3)))
    return out


def group_fragments():
    g = Gen(5)
    out = []
    for kind in ("tcp", "udp", "icmp"):
        for _ in range(5):
            top = (
                upper(g, kind, g.r.randrange(24, 40))
                if kind != "icmp"
                else ICMP() / Raw(g.payload(40))
            )
            body = bytes(top)
            ip = g.ipv4(proto={"tcp": 6, "udp": 17, "icmp": 1}[kind], flags="MF")
            # First fragment with the whole transport header, then cut inside it.
            out.append(frame(g.l2() / ip / Raw(body)))
            for cut in (4, 7, 8, 12, 16, 19):
                out.append(frame(g.l2() / ip.copy() / Raw(body[:cut])))
            # A middle and a last fragment (offsets in 8-byte units).
            out.append(
                frame(
                    g.l2()
                    / g.ipv4(proto=6, flags="MF", frag=g.r.randrange(1, 8191))
                    / Raw(body[:24])
                )
            )
            out.append(
                frame(
                    g.l2()
                    / g.ipv4(proto=17, flags="", frag=g.r.randrange(1, 8191))
                    / Raw(body[:24])
                )
            )
    # Don't-fragment only, and offset 0 without MF: not fragments.
    for _ in range(6):
        out.append(frame(g.l2() / g.ipv4(flags="DF") / upper(g, "tcp", 10)))
        out.append(frame(g.l2() / g.ipv4(flags="") / upper(g, "udp", 10)))
    # IPv6: first (offset 0, M), middle, last, atomic (offset 0, M = 0: RFC 6946).
    for kind in ("tcp", "udp"):
        for _ in range(5):
            body = bytes(upper(g, kind, g.r.randrange(24, 40)))
            nh = 6 if kind == "tcp" else 17
            fid = g.r.randrange(1 << 32)
            out.append(
                frame(
                    g.l2() / g.ipv6() / IPv6ExtHdrFragment(nh=nh, offset=0, m=1, id=fid) / Raw(body)
                )
            )
            for cut in (4, 8, 12, 19):
                out.append(
                    frame(
                        g.l2()
                        / g.ipv6()
                        / IPv6ExtHdrFragment(nh=nh, offset=0, m=1, id=fid)
                        / Raw(body[:cut])
                    )
                )
            out.append(
                frame(
                    g.l2()
                    / g.ipv6()
                    / IPv6ExtHdrFragment(nh=nh, offset=g.r.randrange(1, 8191), m=1, id=fid)
                    / Raw(body[:24])
                )
            )
            out.append(
                frame(
                    g.l2()
                    / g.ipv6()
                    / IPv6ExtHdrFragment(nh=nh, offset=g.r.randrange(1, 8191), m=0, id=fid)
                    / Raw(body[:24])
                )
            )
            out.append(
                frame(
                    g.l2()
                    / g.ipv6()
                    / IPv6ExtHdrFragment(offset=0, m=0, id=fid)
                    / upper(g, kind, 13)
                )
            )
    # Per-fragment headers before the Fragment header, destination options after it, and a later
    # fragment whose payload looks like an extension header.
    for _ in range(6):
        out.append(
            frame(
                g.l2()
                / g.ipv6()
                / hbh(g)
                / IPv6ExtHdrFragment(offset=0, m=1)
                / dest(g)
                / upper(g, "tcp", 8)
            )
        )
        out.append(
            frame(
                g.l2()
                / g.ipv6()
                / routing0(g, 1, 1)
                / IPv6ExtHdrFragment(offset=0, m=0)
                / upper(g, "udp", 8)
            )
        )
        out.append(
            frame(
                g.l2()
                / g.ipv6()
                / hbh(g)
                / IPv6ExtHdrFragment(nh=60, offset=5, m=1)
                / Raw(bytes([6, 0]) + g.payload(22))
            )
        )
        out.append(frame(g.l2((0x8100,)) / g.ipv4(proto=17, flags="MF") / Raw(g.payload(6))))
    return out


def group_non_ip():
    g = Gen(6)
    out = []
    for op in (1, 2):
        for _ in range(4):
            out.append(frame(g.l2() / ARP(op=op, psrc=g.v4addr(), pdst=g.v4addr())))
    for ty in (
        0x88CC,
        0x8847,
        0x8864,
        0x8863,
        0x8137,
        0x0842,
        0x88E5,
        0x88F7,
        0x9000,
        0x22F0,
        0x0806,
        0xFFFF,
        0x0600,
        0x05DC,
        0x002E,
        0x0001,
    ):
        for n in (0, 1, 46):
            out.append(frame(Ether(dst=MAC_DST, src=MAC_SRC, type=ty) / Raw(g.payload(n))))
    # MPLS carrying IPv4: the parser stops at the label (layer 2 only).
    for _ in range(4):
        out.append(
            frame(
                Ether(dst=MAC_DST, src=MAC_SRC, type=0x8847)
                / Raw(bytes.fromhex("0001f140"))
                / g.ipv4()
                / upper(g, "tcp", 4)
            )
        )
    # EtherType and IP version that disagree.
    for _ in range(4):
        out.append(
            frame(Ether(dst=MAC_DST, src=MAC_SRC, type=0x0800) / g.ipv6() / upper(g, "udp", 4))
        )
        out.append(
            frame(
                Ether(dst=MAC_DST, src=MAC_SRC, type=0x86DD)
                / g.ipv4()
                / upper(g, "udp", 4)
                / Raw(bytes(24))
            )
        )
    for tags in ((0x8100,), (0x88A8, 0x8100)):
        for ty in (0x88CC, 0x8847):
            p = g.l2(tags)
            out.append(
                frame(p / Raw(g.payload(30)))[: 12 + 4 * len(tags)]
                + struct.pack("!H", ty)
                + g.payload(30)
            )
    return out


def group_udp_len():
    g = Gen(7)
    out = []
    for fam in ("v4", "v6"):
        for _ in range(6):
            data = g.payload(g.r.randrange(8, 40))
            # UDP Length shorter than the IP payload by 1..8 bytes: the rest is not covered.
            for short in (1, 2, 3, 8):
                u = UDP(sport=g.port(), dport=g.port(), len=8 + len(data) - short)
                inner = bytes(u / Raw(data[: len(data) - short]))
                body = inner + data[len(data) - short :]
                ip = g.ipv4(proto=17) if fam == "v4" else g.ipv6(nh=17)
                out.append(frame(g.l2() / ip / Raw(body)))
            # Longer than the IP payload, and under 8: malformed.
            for ln in (8 + len(data) + 1, 0xFFFF, 0, 7):
                ip = g.ipv4() if fam == "v4" else g.ipv6()
                out.append(
                    frame(g.l2() / ip / UDP(sport=g.port(), dport=g.port(), len=ln) / Raw(data))
                )
            # Checksum 0: "none" over IPv4, invalid over IPv6.
            ip = g.ipv4() if fam == "v4" else g.ipv6()
            out.append(
                frame(g.l2() / ip / UDP(sport=g.port(), dport=g.port(), chksum=0) / Raw(data))
            )
    # Datagrams whose checksum computes to 0x0000 (sent as 0xFFFF): a payload word picked to make
    # the sum all-ones, for each family; with the field 0xFFFF, 0 and 0x0000 again.
    for fam in ("v4", "v6"):
        for _ in range(6):
            ip = g.ipv4() if fam == "v4" else g.ipv6()
            data = bytearray(g.payload(2 * g.r.randrange(2, 12)))
            data[0:2] = b"\0\0"
            p = g.l2() / ip / UDP(sport=g.port(), dport=g.port(), chksum=0) / Raw(bytes(data))
            b = bytearray(frame(p))
            op = OwnParse(bytes(b))
            cur = own_add(own_sum(bytes(b[op.l4o :])), own_pseudo(op, len(b) - op.l4o))
            b[op.l4o + 8 : op.l4o + 10] = struct.pack("!H", 0xFFFF - cur)
            for field in (0xFFFF, 0x0000):
                c = bytearray(b)
                c[op.l4o + 6 : op.l4o + 8] = struct.pack("!H", field)
                out.append(bytes(c))
    # TCP too: its computed 0x0000 stays 0x0000.
    for _ in range(4):
        ip = g.ipv4()
        p = (
            g.l2()
            / ip
            / TCP(sport=g.port(), dport=g.port(), chksum=0, flags="A")
            / Raw(bytes(2) + g.payload(10))
        )
        b = bytearray(frame(p))
        op = OwnParse(bytes(b))
        cur = own_add(own_sum(bytes(b[op.l4o :])), own_pseudo(op, len(b) - op.l4o))
        b[op.l4o + 20 : op.l4o + 22] = struct.pack("!H", 0xFFFF - cur)
        out.append(bytes(b))
    # Bytes after the IP packet (Ethernet padding, zero or not), and IP lengths that lie.
    for fam in ("v4", "v6"):
        for kind in ("tcp", "udp"):
            for _ in range(3):
                ip = g.ipv4() if fam == "v4" else g.ipv6()
                b = frame(g.l2() / ip / upper(g, kind, g.r.randrange(4)))
                out.append(b + bytes(max(0, 60 - len(b))))
                out.append(b + g.payload(g.r.randrange(1, 9)))
                lying = bytearray(b)
                at = 14 + (2 if fam == "v4" else 4)
                length = be16(lying, at)
                for new in (length + 1, length + 100, 0, 1):
                    lying[at : at + 2] = struct.pack("!H", new)
                    out.append(bytes(lying))
    return out


def boundaries(b):
    """Every header boundary of a well-formed frame: the end of the Ethernet header, of each
    tag, of the fixed IP header, of each option area or extension header, of the transport
    header, and the frame's end."""
    p = OwnParse(b)
    out = {14, len(b)}
    at, ty = 12, be16(b, 12)
    pos = 14
    while ty in (0x8100, 0x88A8) and pos + 4 <= len(b) and pos < 22:
        ty = be16(b, pos + 2)
        pos += 4
        out.add(pos)
    if p.l3:
        o = p.l3o
        if p.l3.startswith("v4"):
            out.update({o + 20, o + p.l3_len})
        else:
            out.add(o + 40)
            ip = b[o:]
            nh, q = ip[6], 40
            while nh in (0, 43, 60, 44, 51) and q < p.l3_len:
                size = 8 if nh == 44 else (ip[q + 1] + 2) * 4 if nh == 51 else (ip[q + 1] + 1) * 8
                nh, q = ip[q], q + size
                out.add(o + q)
        if p.l4 == "tcp":
            out.update({p.l4o + 20, p.l4o + p.l4_len})
        elif p.l4 == "udp":
            out.add(p.l4o + 8)
    return sorted(out)


def group_truncated(bases):
    out = [b""]
    seen = set()
    for b in bases:
        for edge in boundaries(b):
            for cut in (edge - 1, edge, edge + 1):
                if 0 < cut < len(b) and (b, cut) not in seen:
                    seen.add((b, cut))
                    out.append(b[:cut])
    return out


def group_corrupt(bases):
    g = Gen(9)
    out = []
    for b in bases:
        p = OwnParse(b)
        muts = []

        def put(at, value, width=1):
            c = bytearray(b)
            c[at : at + width] = value.to_bytes(width, "big")
            if bytes(c) != b:
                muts.append(bytes(c))

        et = p.l2 - 2
        put(et, g.r.choice([0x0800, 0x86DD, 0x0806, 0x88CC, 0x8100]), 2)
        if p.l2 > 14:
            put(12, g.r.choice([0x88A8, 0x8100, 0x9100, 0x0800]), 2)
        if p.l3:
            o = p.l3o
            put(o, (g.r.choice([0, 1, 5, 7, 15]) << 4) | (b[o] & 0xF))
            if p.l3.startswith("v4"):
                for ihl in (0, 4, 6, 15, p.l3_len // 4 + 1):
                    put(o, 0x40 | (ihl & 0xF))
                tl = be16(b, o + 2)
                for v in (0, p.l3_len - 1, tl - 1, tl + 1, 0xFFFF):
                    put(o + 2, v & 0xFFFF, 2)
                put(o + 6, g.r.choice([0x2000, 0x0001, 0x2010, 0x4000]), 2)
                put(o + 9, g.r.choice([6, 17, 1, 50]))
                put(o + 10 + g.r.randrange(2), b[o + 10] ^ 0xFF)
            else:
                pl = be16(b, o + 4)
                for v in (0, pl - 1, pl + 1, 0xFFFF):
                    put(o + 4, v & 0xFFFF, 2)
                put(o + 6, g.r.choice([6, 17, 59, 0, 44, 60]))
                if p.l3 == "v6ext":
                    # The first extension header's next-header and length bytes.
                    put(o + 40, g.r.choice([6, 17, 0, 44, 58]))
                    if b[o + 6] != 51:
                        put(o + 41, g.r.choice([b[o + 41] + 1, 0xFF]) & 0xFF)
        if p.l4 == "tcp" and not p.fragmented:
            for doff in (0, 4, 15, p.l4_len // 4 + 1):
                put(p.l4o + 12, ((doff & 0xF) << 4) | (b[p.l4o + 12] & 0xF))
            put(p.l4o + 16 + g.r.randrange(2), b[p.l4o + 16] ^ 0x5A)
        if p.l4 == "udp" and not p.fragmented:
            ul = be16(b, p.l4o + 4)
            for v in (0, 7, 8, ul - 1, ul + 1, 0xFFFF):
                put(p.l4o + 4, v & 0xFFFF, 2)
            put(p.l4o + 6, 0, 2)
            put(p.l4o + 7, b[p.l4o + 7] ^ 0x01)
        if p.l4 in ("tcp", "udp"):
            put(p.l4o + g.r.randrange(2), b[p.l4o] ^ 0x80)
        if len(b) > p.l4o + p.l4_len and p.l3:
            i = g.r.randrange(p.l4o + p.l4_len, len(b))
            put(i, b[i] ^ (1 << g.r.randrange(8)))
        out.extend(g.r.sample(muts, min(len(muts), 12)))
    return out


def segmentation_cases():
    g = Gen(10)
    cases = []

    def tcp_frame(tags, fam, opts=(), exts=(), n=1000, flags="PA", seq=None, ident=None, topts=()):
        ip = g.ipv4(options=opts) if fam == "v4" else g.ipv6()
        if ident is not None:
            ip.id = ident
        p = g.l2(tags) / ip
        for e in exts:
            p = p / e
        t = g.tcp(topts, flags=flags)
        if seq is not None:
            t.seq = seq
        return frame(p / t / Raw(g.payload(n)))

    def udp_frame(tags, fam, opts=(), exts=(), n=1000, ident=None):
        ip = g.ipv4(options=opts) if fam == "v4" else g.ipv6()
        if ident is not None:
            ip.id = ident
        p = g.l2(tags) / ip
        for e in exts:
            p = p / e
        return frame(p / g.udp() / Raw(g.payload(n)))

    ts = [("NOP", None), ("NOP", None), ("Timestamp", (7, 9))]
    cases += [
        ("tcp4-seq-wrap", tcp_frame((), "v4", n=500, seq=0xFFFFFF00, flags="FPA"), 100),
        ("tcp4-ipid-wrap", tcp_frame((), "v4", n=700, ident=0xFFFD), 100),
        ("tcp4-cwr-fin-psh", tcp_frame((0x8100,), "v4", n=520, flags="CFPA"), 128),
        (
            "tcp4-options",
            tcp_frame(
                (), "v4", opts=[IPOption_RR(routers=["10.0.0.1", "10.0.0.2"])], n=400, topts=ts
            ),
            96,
        ),
        (
            "tcp4-lsrr",
            tcp_frame(
                (), "v4", opts=[IPOption_LSRR(routers=["203.0.113.1", "203.0.113.200"])], n=300
            ),
            64,
        ),
        ("tcp4-qinq", tcp_frame((0x88A8, 0x8100), "v4", n=200, flags="A"), 99),
        ("tcp4-mss1", tcp_frame((), "v4", n=6, flags="FA"), 1),
        ("tcp4-exact", tcp_frame((), "v4", n=400), 100),
        ("tcp4-one-more", tcp_frame((), "v4", n=401), 100),
        ("tcp4-single", tcp_frame((), "v4", n=50), 1448),
        ("tcp6-plain", tcp_frame((), "v6", n=600, seq=0xFFFFFFFF), 200),
        ("tcp6-hbh-dest", tcp_frame((), "v6", exts=[hbh(g), dest(g, 1)], n=400, topts=ts), 100),
        ("tcp6-routing0", tcp_frame((), "v6", exts=[routing0(g, 2, 2)], n=350, flags="CPA"), 100),
        ("tcp6-routing2", tcp_frame((0x8100,), "v6", exts=[dest(g), routing2(g, 1)], n=250), 100),
        ("tcp6-srh", tcp_frame((), "v6", exts=[srh(g, 3, 2)], n=320), 80),
        ("udp4-plain", udp_frame((), "v4", n=600, ident=0xFFFF), 100),
        (
            "udp4-options",
            udp_frame(
                (),
                "v4",
                opts=[IPOption_Router_Alert(), IPOption_LSRR(routers=["198.51.100.9"])],
                n=300,
            ),
            64,
        ),
        ("udp4-small-mss", udp_frame((0x8100,), "v4", n=29), 7),
        ("udp6-plain", udp_frame((), "v6", n=500), 128),
        ("udp6-routing0", udp_frame((), "v6", exts=[hbh(g), routing0(g, 3, 1)], n=300), 100),
        ("udp6-srh", udp_frame((0x88A8, 0x8100), "v6", exts=[srh(g, 2, 1)], n=200), 50),
    ]
    for k in range(40):
        fam = g.r.choice(("v4", "v6"))
        kind = g.r.choice(("tcp", "udp"))
        tags = g.r.choice(((), (0x8100,), (0x88A8, 0x8100)))
        mss = g.r.choice((1, 8, 64, 100, 536, 1000, 1448))
        n = g.r.randrange(1, min(900, 12 * mss) + 1)
        opts, exts = (), ()
        if fam == "v4" and g.r.random() < 0.4:
            opts = g.r.choice(
                (
                    [IPOption_NOP()] * 4,
                    [IPOption_LSRR(routers=[g.v4addr(), g.v4addr()])],
                    [IPOption_Router_Alert()],
                )
            )
        if fam == "v6" and g.r.random() < 0.5:
            exts = g.r.choice(
                ([hbh(g)], [routing0(g, 1, 1)], [srh(g, 2, 1)], [dest(g), routing2(g, 1)])
            )
        if kind == "tcp":
            fl = g.r.choice(("A", "PA", "FPA", "CA", "CFPA"))
            b = tcp_frame(
                tags,
                fam,
                opts=opts,
                exts=exts,
                n=n,
                flags=fl,
                seq=g.r.choice((None, 0xFFFFFFFF - g.r.randrange(3000))),
                ident=g.r.choice((None, 0xFFFF - g.r.randrange(40))),
                topts=g.r.choice(((), ts)),
            )
        else:
            b = udp_frame(
                tags,
                fam,
                opts=opts,
                exts=exts,
                n=n,
                ident=g.r.choice((None, 0xFFFF - g.r.randrange(40))),
            )
        cases.append(("random-%02d-%s%s" % (k, kind, fam[1]), b, mss))
    return cases


# ==============================================================================================
# Writing.
# ==============================================================================================

HEADER = """\
# virtionet offload corpus: the third oracle of the offload crate (issue 13).
# Generated by tests/scapy/gen_corpus.py with scapy {version}; do not edit — regenerate, and check
# with `python3 tests/scapy/gen_corpus.py --check` (byte for byte). Read by
# offload/tests/scapy_corpus.rs. Every fact below was computed twice — through scapy (its
# dissectors and its checksum code: in4_chksum, in6_chksum, checksum) and by the generator's own
# byte-level code — and written only where both agreed.
#
# F <group> <name> <frame hex, "-" if empty> <facts>
#   layout=L2,L3,L4     NET_PACKET_LAYOUT rx::metadata reports (type/length; none = Unspecified;
#                       eth; v4 / v4opt / v6 / v6ext; tcp / udp / frag = IPFragment /
#                       other = IPNotFragment)
#   ipcsum=             receive verdict on the IPv4 header checksum (valid/invalid/notchecked)
#   ipfill=             IPv4 header checksum tx::prepare computes when asked for it alone
#                       (hex; na = nothing to compute; refused = prepare errs)
#   l4csum=             receive verdict on the TCP/UDP checksum, verified in software
#   fill=               the checksum segment::fill_l4_checksum writes (hex), or err
#   tx=                 tx::prepare asked for the TCP/UDP checksum with VIRTIO_NET_F_CSUM:
#                       needs/<csum_start>/<csum_offset>/<pseudo-header seed>, software, refused
#   rss= / rssall=      rss::hash_frame with the key below over IPv4|IPv6|TCP|UDP, and over every
#                       type (with IPv4 options and IPv6 extensions): <hash>/<types>, or none
# S <name> <mss> <frame hex> <lso> <count>, then <count> lines: <segment hex> <seed>
#   lso=                tx::prepare's LSO/USO header: gso_type/hdr_len/csum_start/csum_offset/seed
#   segment             segment::Segmenter::write(i, Full); seed: what it writes with Seed
# key {key}
"""


def build():
    groups = [
        ("plain", group_plain()),
        ("vlan", group_vlan()),
        ("ipv4_options", group_ipv4_options()),
        ("ipv6_ext", group_ipv6_ext()),
        ("fragments", group_fragments()),
        ("non_ip", group_non_ip()),
        ("udp_len", group_udp_len()),
    ]
    # The malformed set: well-formed frames from every group, cut and corrupted at and around
    # every header boundary.
    pick = random.Random(8)
    bases = []
    for name, frames in groups:
        if name in ("non_ip",):
            continue
        good = [b for b in frames if not OwnParse(b).stopped and len(b) < 300]
        bases.extend(pick.sample(good, min(len(good), 9)))
    groups.append(("truncated", group_truncated(bases)))
    groups.append(("corrupt", group_corrupt(bases)))
    lines = [HEADER.format(version=scapy.__version__, key=RSS_KEY.hex())]
    counts = []
    for name, frames in groups:
        seen = set()
        n = 0
        for b in frames:
            if b in seen:
                continue
            seen.add(b)
            f = facts(b)
            lines.append(
                "F %s %s-%04d %s layout=%s ipcsum=%s ipfill=%s l4csum=%s fill=%s tx=%s rss=%s rssall=%s\n"
                % (
                    name,
                    name,
                    n,
                    b.hex() or "-",
                    f["layout"].replace(" ", ","),
                    f["ipcsum"],
                    f["ipfill"],
                    f["l4csum"],
                    f["fill"],
                    f["tx"],
                    f["rss"],
                    f["rssall"],
                )
            )
            n += 1
        counts.append((name, n))
    segs = 0
    for name, b, mss in segmentation_cases():
        lso, segments = segment_case(b, mss)
        lines.append("S %s %d %s lso=%s %d\n" % (name, mss, b.hex(), lso, len(segments)))
        for s, seed in segments:
            lines.append("  %s %04x\n" % (s.hex(), seed))
        segs += 1
    return "".join(lines), counts, segs


def self_check():
    """The two Toeplitz forms against Microsoft's published vectors, and the two sums."""
    vec = [
        ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323E8FC2, 0x51CCC178),
        ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xD718262A, 0xC626B0EA),
    ]
    for src, sp, dst, dp, h2, h4 in vec:
        two = socket.inet_aton(src) + socket.inet_aton(dst)
        four = two + struct.pack("!HH", sp, dp)
        for t in (own_toeplitz, sc_toeplitz):
            assert t(RSS_KEY, two) == h2 and t(RSS_KEY, four) == h4, t.__name__
    v6 = socket.inet_pton(socket.AF_INET6, "3ffe:2501:200:1fff::7") + socket.inet_pton(
        socket.AF_INET6, "3ffe:2501:200:3::1"
    )
    for t in (own_toeplitz, sc_toeplitz):
        assert (
            t(RSS_KEY, v6) == 0x2CC18CD5
            and t(RSS_KEY, v6 + struct.pack("!HH", 2794, 1766)) == 0x40207D3D
        )
    r = random.Random(0)
    for n in range(0, 200, 7):
        d = bytes(r.randrange(256) for _ in range(n))
        assert own_sum(d) == sc_fold(d) or (own_sum(d) == 0 and sc_fold(d) == 0xFFFF)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare with the committed corpus; exit 1 on a difference",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if scapy.__version__ != SCAPY_VERSION:
        print(
            "warning: scapy %s, the corpus was made with %s" % (scapy.__version__, SCAPY_VERSION),
            file=sys.stderr,
        )
    self_check()
    text, counts, segs = build()
    total = sum(n for _, n in counts)
    summary = ", ".join("%s %d" % c for c in counts)
    if args.check:
        old = args.out.read_text() if args.out.exists() else ""
        if old != text:
            print("corpus differs from %s (regenerate it)" % args.out, file=sys.stderr)
            return 1
        print(
            "corpus reproduced byte for byte: %d frames (%s), %d segmentation cases"
            % (total, summary, segs)
        )
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(
        "wrote %s: %d frames (%s), %d segmentation cases, %d bytes"
        % (args.out, total, summary, segs, len(text))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
