/* The one host/guest contract of mote: guest memory layout, exit ports, the
 * call message encoding and the ELF ABI note. Included by the host library
 * and by the guest runtime; freestanding. Every size and offset the other
 * side depends on is pinned by a _Static_assert below: changing one is an ABI
 * change and must bump MOTE_ABI_VERSION.
 *
 * Guest physical address == guest virtual address (identity map built by the
 * host). Guest code runs at CPL 3; CPL 0 exists only for the exception stubs.
 */
#ifndef MOTE_ABI_H
#define MOTE_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "mote/types.h"

/* 2: the system area moved above 64 KiB (vm.mmap_min_addr), exits may call
 * the host's exit entry directly, and a note locates the function table. */
#define MOTE_ABI_VERSION 2u

#define MOTE_PAGE_SIZE 4096ull
#define MOTE_LARGE_PAGE_SIZE (2ull << 20)

/* ---- Fixed low memory (the "system area", below MOTE_IMAGE_BASE) ----
 * Nothing lives below MOTE_SYSTEM_BASE: on the process backend guest memory
 * is mapped at its guest addresses in a process, and Linux refuses mappings
 * below vm.mmap_min_addr (65536 on Debian) to unprivileged users. */
#define MOTE_SYSTEM_BASE 0x10000ull
#define MOTE_GDT_ADDR 0x10000ull      /* GDT + TSS, supervisor read-only */
#define MOTE_TSS_OFFSET 0x800ull      /* TSS inside the GDT page */
#define MOTE_IDT_ADDR 0x11000ull      /* 256 gates, supervisor read-only */
#define MOTE_STUBS_ADDR 0x12000ull    /* exception entry stubs, supervisor exec */
#define MOTE_KSTACK_ADDR 0x13000ull   /* exception stack (IST1), supervisor rw */
#define MOTE_KSTACK_TOP 0x15000ull
#define MOTE_BOOTINFO_ADDR 0x15000ull /* struct mote_boot_info, user read-only */
#define MOTE_SYSCALL_ADDR 0x16000ull  /* where SYSCALL lands, user execute (host's) */
#define MOTE_PGTABLE_ADDR 0x17000ull  /* page tables, not mapped at all */
#define MOTE_STUB_SIZE 16u            /* bytes per exception stub */

/* The guest image is linked at MOTE_IMAGE_BASE and must end below
 * MOTE_IMAGE_LIMIT. Everything else follows the image (see mote_boot_info). */
#define MOTE_IMAGE_BASE 0x200000ull
#define MOTE_IMAGE_LIMIT 0x40000000ull

/* Largest guest physical address of guest RAM. */
#define MOTE_MEM_LIMIT (64ull << 30)

/* Host files mapped into the guest live in this window above RAM (covered
 * by 2 MiB pages from the start; only the parts backed by a mapping are
 * accessible). */
#define MOTE_MAP_BASE (64ull << 30)
#define MOTE_MAP_LIMIT (68ull << 30)

/* The table of file mappings, in the boot-info page (user read-only). */
#define MOTE_MAPTAB_ADDR (MOTE_BOOTINFO_ADDR + 0x200)
#define MOTE_MAX_MAPPINGS 32
#define MOTE_MAP_NAME_MAX 47
#define MOTE_MAPF_WRITABLE 1u /* copy-on-write: guest writes stay private */
struct mote_map_entry {
	uint64_t guest_addr;
	uint64_t size;
	uint32_t flags;
	uint32_t name_len;
	char name[MOTE_MAP_NAME_MAX + 1]; /* the file's base name, NUL-terminated */
};
struct mote_map_table {
	uint32_t count;
	uint32_t reserved;
	struct mote_map_entry entries[MOTE_MAX_MAPPINGS];
};

/* GDT selectors. User selectors carry RPL 3. */
#define MOTE_SEL_KCODE 0x08u
#define MOTE_SEL_KDATA 0x10u
#define MOTE_SEL_UDATA 0x1bu
#define MOTE_SEL_UCODE 0x23u
#define MOTE_SEL_TSS 0x28u

/* ---- Exits ----
 * The guest executes `out %al, $port` (RFLAGS.IOPL = 3), or, when the host
 * gave it an exit entry (boot info, CALL messages), calls that address with
 * the port in %edi after stepping over its 128-byte red zone: the host
 * returns to the instruction after the call with every register as it was.
 * A sandbox parked at an exit is in the state "the exit instruction has
 * completed" on every backend, so snapshots move between them. */
#define MOTE_PORT_DONE 0x10u     /* init or call finished: RESULT/INIT in out buffer */
#define MOTE_PORT_HOSTCALL 0x11u /* HOSTCALL in out buffer; reply in in buffer */
#define MOTE_PORT_LOG 0x12u      /* log buffer full: host drains it */
#define MOTE_PORT_ABORT 0x13u    /* ABORT in out buffer */
#define MOTE_PORT_EXC_BASE 0x80u /* + vector (0..31): CPU exception */
#define MOTE_PORT_SYSCALL 0x7fu  /* the SYSCALL landing stub: the guest ran `syscall` */

/* ---- Boot info: written by the host at MOTE_BOOTINFO_ADDR ---- */
#define MOTE_BOOT_MAGIC 0x544f4f4245544f4dull /* "MOTEBOOT" */

struct mote_boot_info {
	uint64_t magic;
	uint32_t abi_version;
	uint32_t flags;
	uint64_t mem_size;   /* bytes of guest physical memory, from 0 */
	uint64_t image_end;  /* first byte past the loaded image */
	uint64_t stack_base; /* lowest stack byte; a guard page lies below */
	uint64_t stack_size;
	uint64_t in_buf; /* host -> guest messages, user read-only */
	uint64_t in_size;
	uint64_t out_buf; /* guest -> host messages, user read-write */
	uint64_t out_size;
	uint64_t log_buf; /* struct mote_log_hdr + records, user read-write */
	uint64_t log_size;
	uint64_t heap_base;
	uint64_t heap_size;
	uint64_t exit_entry; /* 0: exit with `out`; else call it (see Exits) */
	uint64_t reserved[3];
};

/* ---- Messages in the in/out buffers ---- */
#define MOTE_MSG_MAGIC 0x4753454du /* "MESG" */

enum mote_msg_kind {
	MOTE_MSG_INIT = 1,       /* guest -> host: function directory after init */
	MOTE_MSG_CALL = 2,       /* host -> guest: call function `index` */
	MOTE_MSG_RESULT = 3,     /* guest -> host: status + one value */
	MOTE_MSG_HOSTCALL = 4,   /* guest -> host: call host function `name` */
	MOTE_MSG_HOSTRESULT = 5, /* host -> guest: status + one value */
	MOTE_MSG_ABORT = 6,      /* guest -> host: code in status, message in name */
};

/* One value on the wire. Scalars live in `bits` (f32/f64 as their bit
 * patterns, bool as 0/1); strings and bytes live in the message's data area:
 * `bits` is their offset from the start of the message and `len` their
 * length. The host NUL-terminates strings it sends (the NUL is not counted). */
struct mote_wire_value {
	uint32_t type;
	uint32_t len;
	uint64_t bits;
};

struct mote_msg {
	uint32_t magic;
	uint32_t kind;
	uint32_t size;  /* bytes of the whole message, header included */
	uint32_t nvals; /* entries in vals[] (INIT: entries in fns[]) */
	int32_t status; /* 0 or -MOTE_E*; ABORT: the guest's code */
	uint32_t index; /* CALL: function index; HOSTCALL: expected result type */
	union {
		struct {
			uint32_t name_off;
			uint32_t name_len; /* HOSTCALL: function name; ABORT: message */
		};
		/* CALL: the exit entry for this call (as in the boot info); the
		 * backend may differ from the one the guest started on. */
		uint64_t exit_entry;
	};
	/* followed by struct mote_wire_value vals[nvals] (or mote_wire_fn fns[]) */
};

/* INIT: one entry per guest function; names in the data area. */
struct mote_wire_fn {
	uint32_t name_off;
	uint32_t name_len;
	uint8_t ret;
	uint8_t nargs;
	uint8_t args[MOTE_MAX_ARGS];
	uint8_t pad[6];
};

/* ---- Log buffer ---- */
struct mote_log_hdr {
	uint32_t used;    /* bytes of records after this header */
	uint32_t dropped; /* records the guest could not fit */
};
struct mote_log_rec {
	uint8_t level;
	uint8_t pad;
	uint16_t len; /* text bytes following; records are not padded */
};
#define MOTE_LOG_MAX_MSG 4096u

/* ---- ELF notes (PT_NOTE, name "mote") ----
 * ABI: a 4-byte version. FNS: the guest address range of the function table
 * (struct mote_wire_desc entries), so tools list a guest's functions without
 * running it. */
#define MOTE_NOTE_NAME "mote"
#define MOTE_NOTE_TYPE_ABI 0x4d4f5445u /* "MOTE" */
#define MOTE_NOTE_TYPE_FNS 0x534e464du /* "MFNS" */
struct mote_note_fns {
	uint64_t start, end;
};

/* One entry of the guest's function table (.mote_fns), as the guest SDK's
 * struct mote_fn_desc lays it out: pointers are guest addresses. */
struct mote_wire_desc {
	uint64_t name; /* NUL-terminated */
	uint8_t ret;
	uint8_t nargs;
	uint8_t pad[6];
	uint64_t args; /* nargs type bytes */
	uint64_t wrapper;
};

/* ---- Tripwires ---- */
_Static_assert(sizeof(struct mote_boot_info) == 144, "boot info size is ABI");
_Static_assert(offsetof(struct mote_boot_info, in_buf) == 48, "boot info layout is ABI");
_Static_assert(offsetof(struct mote_boot_info, heap_base) == 96, "boot info layout is ABI");
_Static_assert(sizeof(struct mote_wire_value) == 16, "wire value size is ABI");
_Static_assert(sizeof(struct mote_msg) == 32, "message header size is ABI");
_Static_assert(offsetof(struct mote_msg, name_off) == 24, "message layout is ABI");
_Static_assert(sizeof(struct mote_wire_fn) == 32, "function entry size is ABI");
_Static_assert(offsetof(struct mote_wire_fn, args) == 10, "function entry layout is ABI");
_Static_assert(sizeof(struct mote_log_hdr) == 8, "log header size is ABI");
_Static_assert(sizeof(struct mote_log_rec) == 4, "log record size is ABI");
_Static_assert(offsetof(struct mote_boot_info, exit_entry) == 112, "boot info layout is ABI");
_Static_assert(offsetof(struct mote_msg, exit_entry) == 24, "message layout is ABI");
_Static_assert(sizeof(struct mote_note_fns) == 16, "function note size is ABI");
_Static_assert(sizeof(struct mote_wire_desc) == 32, "function table entry size is ABI");
_Static_assert(MOTE_SYSTEM_BASE >= 65536 && MOTE_GDT_ADDR >= MOTE_SYSTEM_BASE,
	       "nothing below Debian's vm.mmap_min_addr");
_Static_assert(MOTE_KSTACK_TOP <= MOTE_BOOTINFO_ADDR, "kernel stack below boot info");
_Static_assert(MOTE_BOOTINFO_ADDR + MOTE_PAGE_SIZE <= MOTE_SYSCALL_ADDR, "layout order");
_Static_assert(MOTE_SYSCALL_ADDR + MOTE_PAGE_SIZE <= MOTE_PGTABLE_ADDR, "layout order");
_Static_assert(32 * MOTE_STUB_SIZE <= MOTE_PAGE_SIZE, "stubs fit one page");
_Static_assert(MOTE_TYPE_COUNT_ == 10, "value type numbering is ABI");
_Static_assert(sizeof(struct mote_map_entry) == 72, "mapping entry size is ABI");
_Static_assert(sizeof(struct mote_map_table) == 8 + 32 * 72, "mapping table size is ABI");
_Static_assert(MOTE_MAPTAB_ADDR + sizeof(struct mote_map_table) <= MOTE_BOOTINFO_ADDR + MOTE_PAGE_SIZE,
	       "mapping table fits the boot-info page");
_Static_assert(MOTE_MAPTAB_ADDR >= MOTE_BOOTINFO_ADDR + sizeof(struct mote_boot_info),
	       "mapping table after the boot info");
_Static_assert(MOTE_MEM_LIMIT <= MOTE_MAP_BASE, "the mapping window is above RAM");

#endif
