// SPDX-License-Identifier: GPL-2.0 OR MIT
//
// ShardPBX: steers each SIP datagram on the SIP port to the shard that owns
// its Call-ID, inside the kernel, so no shard hands datagrams to another.
//
// An SK_REUSEPORT program on the shards' SO_REUSEPORT group. For each UDP
// datagram it reads the first Call-ID (or compact `i`) header of the header
// block, hashes its value (leading and trailing spaces and tabs left out)
// with FNV-1a 64, the hash `shards/src/runtime/owner.rs` uses, and picks
// socket `hash % shards` of `socks`. Anything it cannot read (no Call-ID in
// the first SCAN_MAX bytes, a folded header, a shard missing from the map)
// falls back to the kernel's own 4-tuple choice, and the shard that gets it
// hands it on in user space as before: this program only saves work, the
// ownership rule lives in user space.
//
// Built by shards/build.rs with clang (-target bpf -O2 -g); no libbpf
// headers needed: the few definitions used are below.

typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_REUSEPORT_SOCKARRAY 20
#define SK_PASS 1

struct sk_reuseport_md {
	union { void *data; __u64 :64; };
	union { void *data_end; __u64 :64; };
	__u32 len;
	__u32 eth_protocol;
	__u32 ip_protocol;
	__u32 bind_inany;
	__u32 hash;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
static long (*bpf_sk_select_reuseport)(void *reuse, void *map, void *key, __u64 flags) = (void *)82;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;

// Bytes of a datagram looked at (a power of two): a Call-ID past them is
// left to user space.
#define SCAN_MAX 2048
// The scratch buffer: twice SCAN_MAX, so a length masked with BUF_LEN - 1
// (which the verifier understands) always fits.
#define BUF_LEN 4096
#define UDP_HEADER 8
#define MAX_SHARDS 256

// The shards' sockets, index = shard id (filled by user space).
struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, MAX_SHARDS);
	__type(key, __u32);
	__type(value, __u32);
} SOCKS SEC(".maps");

// [0] = number of shards (set by user space before the program is attached).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} CONFIG SEC(".maps");

// Counters per CPU: [0] steered to the owner, [1] left to the kernel's hash.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} STATS SEC(".maps");

struct buf {
	__u8 b[BUF_LEN];
};

// Where the datagram is copied to be scanned (one per CPU).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct buf);
} SCRATCH SEC(".maps");

enum state {
	SKIP_LINE,   // inside a line that is not a Call-ID header
	LINE_START,  // first byte of a header line
	NAME,        // matching "call-id", `k` bytes matched so far
	BEFORE_COLON,// the name matched; spaces, then ':'
	BEFORE_VALUE,// after ':'; leading spaces
	VALUE,       // hashing the value
	FOUND,
	NOT_FOUND,
};

struct scan {
	struct buf *buf;
	__u32 n;
	__u32 state;
	__u32 k;
	__u32 have;
	__u64 h;
	__u64 committed;
};

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static __u8 lower(__u8 c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int is_ws(__u8 c)
{
	return c == ' ' || c == '\t';
}

static long step(__u64 i, struct scan *s)
{
	if (i >= s->n || !s->buf)
		return 1;
	__u8 c = s->buf->b[i & (BUF_LEN - 1)];
	switch (s->state) {
	case SKIP_LINE:
		if (c == '\n')
			s->state = LINE_START;
		return 0;
	case LINE_START:
		if (c == '\r' || c == '\n') {
			// The blank line: the header block ended without a Call-ID.
			s->state = NOT_FOUND;
			return 1;
		}
		if (lower(c) == 'c') {
			s->state = NAME;
			s->k = 1;
		} else if (lower(c) == 'i') {
			s->state = BEFORE_COLON;
		} else {
			s->state = SKIP_LINE;
		}
		return 0;
	case NAME: {
		// "call-id", byte k at bits 8k.
		const __u64 name = 0x0064692d6c6c6163ULL;
		__u32 k = s->k;
		if (k < 7 && lower(c) == (__u8)(name >> ((k & 7) * 8))) {
			s->k = k + 1;
			if (k + 1 == 7)
				s->state = BEFORE_COLON;
		} else {
			s->state = c == '\n' ? LINE_START : SKIP_LINE;
		}
		return 0;
	}
	case BEFORE_COLON:
		if (c == ':')
			s->state = BEFORE_VALUE;
		else if (!is_ws(c))
			s->state = c == '\n' ? LINE_START : SKIP_LINE;
		return 0;
	case BEFORE_VALUE:
		if (is_ws(c))
			return 0;
		s->state = VALUE;
		s->h = FNV_OFFSET;
		s->committed = FNV_OFFSET;
		/* fall through */
	case VALUE:
		if (c == '\r' || c == '\n') {
			s->state = s->have ? FOUND : NOT_FOUND;
			return 1;
		}
		s->h = (s->h ^ c) * FNV_PRIME;
		if (!is_ws(c)) {
			s->committed = s->h;
			s->have = 1;
		}
		return 0;
	default:
		return 1;
	}
}

static void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&STATS, &which);
	if (n)
		*n += 1;
}

SEC("sk_reuseport")
int steer(struct sk_reuseport_md *md)
{
	__u32 zero = 0;
	__u32 *shards = bpf_map_lookup_elem(&CONFIG, &zero);
	struct buf *buf = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (!shards || !buf || *shards < 2) {
		count(1);
		return SK_PASS;
	}
	__u32 len = md->len;
	if (len <= UDP_HEADER + 16) {
		count(1);
		return SK_PASS;
	}
	__u64 n = len - UDP_HEADER;
	if (n > SCAN_MAX)
		n = SCAN_MAX;
	// A mask clang cannot drop, so the verifier sees n <= BUF_LEN - 1.
	asm volatile("%0 &= 0xfff" : "+r"(n));
	if (n < 16 || bpf_skb_load_bytes(md, UDP_HEADER, buf->b, n) < 0) {
		count(1);
		return SK_PASS;
	}
	struct scan s = { .buf = buf, .n = n, .state = SKIP_LINE };
	bpf_loop(n, step, &s, 0);
	if (s.state != FOUND) {
		count(1);
		return SK_PASS;
	}
	__u32 owner = (__u32)(s.committed % (__u64)*shards);
	if (bpf_sk_select_reuseport(md, &SOCKS, &owner, 0) < 0) {
		count(1);
		return SK_PASS;
	}
	count(0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
