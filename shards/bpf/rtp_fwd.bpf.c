// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// ShardPBX: relays steady RTP streams inside the kernel.
//
// A TC classifier on the ingress of the host's interfaces (TCX links, one
// per interface, owned by the process: they go when it exits). For each
// IPv4 UDP datagram to one of the relay's ports that user space handed
// over (FWD, keyed by our port), it checks that the datagram is the next
// packet of a steady stream: from the latched peer address, RTP version 2,
// the same SSRC and payload type (marker clear), sequence number = the last
// one + 1, timestamp advanced by at most one second of the clock. Such a
// packet is rewritten (source = our address and the other side's port,
// destination = the other side; the sequence number renumbered when user
// space says so), counted, and sent on: delivered locally when the
// destination is one of ours (only for packets that came in on lo), else
// out of the interface user space named.
//
// Everything else goes on up the stack untouched (TCX_NEXT), to the
// relay's socket: user space takes the stream back, handles the packet
// with its full rules (statistics of every kind, latching, mute, renumber,
// recording), and hands the stream over again once it is steady. So the
// rules live in user space; this program only repeats, for the common
// case, what user space would have done.
//
// Built by shards/build.rs with clang (-target bpf -O2 -g); no libbpf
// headers needed: the few definitions used are below.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef long long __s64;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6

#define TCX_NEXT -1
#define TCX_PASS 0

#define LOOPBACK_IFINDEX 1

#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define BPF_F_MARK_MANGLED_0 (1ULL << 5)


#define ETH_P_IP_BE 0x0008 // htons(0x0800)
#define IPPROTO_UDP 17

struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_skb_store_bytes)(void *skb, __u32 offset, const void *from, __u32 len, __u64 flags) = (void *)9;
static long (*bpf_l3_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to, __u64 size) = (void *)10;
static long (*bpf_l4_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to, __u64 flags) = (void *)11;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static long (*bpf_redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) = (void *)152;

// Offsets in an Ethernet frame carrying IPv4 without options.
#define ETH_LEN 14
#define IP_OFF ETH_LEN
#define IP_CSUM (IP_OFF + 10)
#define IP_SRC (IP_OFF + 12)
#define IP_DST (IP_OFF + 16)
#define UDP_OFF (IP_OFF + 20)
#define UDP_SPORT (UDP_OFF + 0)
#define UDP_DPORT (UDP_OFF + 2)
#define UDP_CSUM (UDP_OFF + 6)
#define RTP_OFF (UDP_OFF + 8)
#define RTP_SEQ (RTP_OFF + 2)

// One stream handed over, keyed by the port it arrives on (host order).
// Written by user space (everything) and by this program (the state and
// counters after each packet it relays). Layout shared with
// shards/src/runtime/kernel_rtp.rs (`FwdEntry`).
struct fwd {
	// Who may send: the latched peer (network order).
	__u32 src_ip;
	__u16 src_port;
	// Our port the packet leaves from, and where it goes (network order).
	__u16 out_port;
	__u32 dst_ip;
	__u16 dst_port;
	// input seq - output seq (host order).
	__u16 seq_offset;
	// The stream (SSRC as on the wire; byte 1 of the RTP header).
	__u32 ssrc;
	__u32 clock_rate;
	__u8 pt;
	__u8 have_transit;
	// The last packet's seq and timestamp (host order).
	__u16 last_seq;
	__u32 last_ts;
	// RFC 3550 A.8: the last relative transit time, the jitter x 16.
	__u32 last_transit;
	// Where it leaves: 0 = delivered locally, else this interface.
	__u32 out_ifindex;
	__u64 jitter16;
	__u64 last_ns;
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct fwd);
} FWD SEC(".maps");

// [0] our address (network order, 0 = any), [1] first port, [2] one past
// the last port (set by user space before the program is attached).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} CONFIG SEC(".maps");

// Counters per CPU: [0] relayed locally, [1] relayed out of an interface,
// [2] left to user space: not the next packet of the steady stream.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} STATS SEC(".maps");

struct head {
	__u8 eth[ETH_LEN];
	__u8 vihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag;
	__u8 ttl;
	__u8 proto;
	__u16 csum;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u16 ulen;
	__u16 ucsum;
	__u8 rtp0;
	__u8 rtp1;
	__u16 seq;
	__u32 ts;
	__u32 ssrc;
} __attribute__((packed));

static __u32 config(__u32 i)
{
	__u32 *v = bpf_map_lookup_elem(&CONFIG, &i);
	return v ? *v : 0;
}

static void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&STATS, &which);
	if (n)
		*n += 1;
}

static __u16 bswap16(__u16 v)
{
	return __builtin_bswap16(v);
}

static __u32 bswap32(__u32 v)
{
	return __builtin_bswap32(v);
}

SEC("classifier")
int rtp_fwd(struct __sk_buff *skb)
{
	if (skb->protocol != ETH_P_IP_BE)
		return TCX_NEXT;
	struct head h;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return TCX_NEXT;
	// IPv4 without options, not a fragment, UDP, lengths that agree (the
	// IP length within the frame, the UDP length the rest of it).
	__u32 ip_len = bswap16(h.tot_len);
	if (h.vihl != 0x45 || (h.frag & bswap16(0x3fff)) || h.proto != IPPROTO_UDP ||
	    ip_len > skb->len - ETH_LEN || bswap16(h.ulen) != ip_len - 20)
		return TCX_NEXT;
	__u32 port = bswap16(h.dport);
	if (port < config(1) || port >= config(2))
		return TCX_NEXT;
	__u32 ours = config(0);
	if (ours && ours != h.daddr)
		return TCX_NEXT;
	struct fwd *f = bpf_map_lookup_elem(&FWD, &port);
	if (!f)
		return TCX_NEXT;
	// The next packet of the steady stream, or user space's to judge.
	__u16 seq = bswap16(h.seq);
	__u32 ts = bswap32(h.ts);
	__s32 ts_step = (__s32)(ts - f->last_ts);
	if (h.saddr != f->src_ip || h.sport != f->src_port || (h.rtp0 & 0xc0) != 0x80 ||
	    h.rtp1 != f->pt || h.ssrc != f->ssrc || seq != (__u16)(f->last_seq + 1) ||
	    ts_step < 0 || (__u32)ts_step > f->clock_rate) {
		count(2);
		return TCX_NEXT;
	}
	// A packet delivered here keeps the route it came with only on lo;
	// from elsewhere the stack would see our own address as its source
	// (martian) and drop it: user space relays it.
	if (!f->out_ifindex && skb->ingress_ifindex != LOOPBACK_IFINDEX) {
		count(2);
		return TCX_NEXT;
	}

	__u32 new_src = h.daddr, new_dst = f->dst_ip;
	__u16 new_sport = f->out_port, new_dport = f->dst_port;

	// A.8 jitter, arrival in the stream's clock (µs first: no overflow).
	__u64 now = bpf_ktime_get_ns();
	__u32 arrival = (__u32)((now / 1000) * f->clock_rate / 1000000);
	__u32 transit = arrival - ts;
	if (f->have_transit) {
		__s32 d = (__s32)(transit - f->last_transit);
		__u64 ad = d < 0 ? -(__s64)d : d;
		f->jitter16 += ad - ((f->jitter16 + 8) >> 4);
	}
	f->last_transit = transit;
	f->have_transit = 1;
	f->last_seq = seq;
	f->last_ts = ts;
	f->last_ns = now;
	f->packets += 1;
	// The UDP payload, as user space counts it (sizeof(h) was read: >= 12).
	f->bytes += ip_len - 20 - 8;

	// Rewrite: our address (the one the peer sent to) and the other side's
	// port as the source, the other side as the destination.
	__u64 l4 = BPF_F_MARK_MANGLED_0;
	bpf_l4_csum_replace(skb, UDP_CSUM, h.saddr, new_src, l4 | BPF_F_PSEUDO_HDR | 4);
	bpf_l4_csum_replace(skb, UDP_CSUM, h.daddr, new_dst, l4 | BPF_F_PSEUDO_HDR | 4);
	bpf_l4_csum_replace(skb, UDP_CSUM, h.sport, new_sport, l4 | 2);
	bpf_l4_csum_replace(skb, UDP_CSUM, h.dport, new_dport, l4 | 2);
	bpf_l3_csum_replace(skb, IP_CSUM, h.saddr, new_src, 4);
	bpf_l3_csum_replace(skb, IP_CSUM, h.daddr, new_dst, 4);
	bpf_skb_store_bytes(skb, IP_SRC, &new_src, 4, 0);
	bpf_skb_store_bytes(skb, IP_DST, &new_dst, 4, 0);
	bpf_skb_store_bytes(skb, UDP_SPORT, &new_sport, 2, 0);
	bpf_skb_store_bytes(skb, UDP_DPORT, &new_dport, 2, 0);
	if (f->seq_offset) {
		__u16 old_seq = h.seq;
		__u16 new_seq = bswap16((__u16)(seq - f->seq_offset));
		bpf_l4_csum_replace(skb, UDP_CSUM, old_seq, new_seq, l4 | 2);
		bpf_skb_store_bytes(skb, RTP_SEQ, &new_seq, 2, 0);
	}

	// Where it goes: one of our own addresses (it came in on lo: the stack
	// delivers it), or out of the interface user space found the route to
	// it through (the kernel resolves the next hop). No FIB lookup here:
	// the helper wants the host to forward, which a PBX does not.
	if (!f->out_ifindex) {
		count(0);
		return TCX_PASS;
	}
	count(1);
	return bpf_redirect_neigh(f->out_ifindex, 0, 0, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
