/* The part of Kamailio's ABI that topos_rs uses: bindgen reads this file with
 * the -D set derived from Kamailio's `make cfg`, and the C shim includes it.
 * The Kamailio headers themselves are fetched (`make headers`), not kept here. */
#ifndef TOPOS_RS_WRAPPER_H
#define TOPOS_RS_WRAPPER_H

#include "core/sr_module.h"
#include "core/dprint.h"
#include "core/mem/mem.h"
#include "core/route.h"
#include "core/script_cb.h"
#include "core/data_lump.h"
#include "core/msg_translator.h"
#include "core/parser/msg_parser.h"
#include "core/parser/parse_via.h"
#include "core/kemi.h"
#include "core/globals.h"
#include "core/trim.h"
#include "core/parser/parse_cseq.h"
#include "core/parser/parse_to.h"
#include "core/mod_fix.h"
#include "core/pvar.h"
#include "core/timer.h"
#include "core/lvalue.h"
#include "core/dset.h"
#include "core/forward.h"
#include "core/rpc.h"
#include "core/rpc_lookup.h"
#include "core/events.h"
#include "core/counters.h"
#include "modules/tm/tm_load.h"
#include "modules/tm/h_table.h"
#include "modules/tm/t_hooks.h"
#include "core/hash_func.h"
#include "core/pt.h"
#include "core/atomic_ops.h"
#include "core/resolve.h"
#include "core/socket_info.h"
#include "core/parser/parse_uri.h"

/* Defined (non-static) in core/msg_translator.c and exported by the kamailio
 * binary, but not declared in its headers: the exact ";received=" / ";rport="
 * texts the core adds to a relayed request's top Via. */
char *received_builder(struct sip_msg *msg, unsigned int *received_len);
char *rport_builder(struct sip_msg *msg, unsigned int *rport_len);

/* The type of a message's core flags (sip_msg.msg_flags and
 * global_req_flags: 32 bits in 5.6, msg_flags_t of 64 bits in 6.0). build.rs
 * gives the FL_* constants this type; the Rust side never writes a width. */
typedef __typeof__(((struct sip_msg *)0)->msg_flags) topos_msg_flags_t;

#ifdef FL_VIA_NORECEIVED
/* 6.0: whether the core adds ";rport=" to a relayed request's top Via
 * (FL_VIA_NORECEIVED, FL_FORCE_RPORT, an rport in the Via). Defined in
 * core/msg_translator.c and exported by the binary, not declared in its
 * headers. build.rs sets cfg(kamailio_via_noreceived) when this exists. */
int rport_test(struct sip_msg *msg);
#endif

/* PARAM_USE_FUNC is defined with sizeof, which bindgen cannot evaluate in a
 * macro; as an enumerator clang computes it, so bindgen emits it. */
enum topos_param_flags { TOPOS_PARAM_USE_FUNC = PARAM_USE_FUNC };

/* Macro-only or static-inline Kamailio APIs, wrapped by src/ffi/shim.c. */
int topos_shim_log_enabled(int level);
void topos_shim_log(int level, const char *text, int len);
void *topos_shim_pkg_malloc(size_t size);
void topos_shim_pkg_free(void *p);
int topos_shim_register_egress(int (*check)(const char *buf, int len));
int topos_shim_same_top_via(struct sip_msg *a, struct sip_msg *b);
int topos_shim_dlg_to_callee(struct sip_msg *msg);
int topos_shim_find_invite(struct tm_binds *tmb, str *callid, str *cseq,
		transaction_cb *cb, struct sip_msg *msg, unsigned int *status,
		int *ours, int *same_via);
int topos_shim_load_tm(struct tm_binds *tmb);
int topos_shim_route_type(void);
const char *topos_shim_runtime_dir(void);
void *topos_shim_t_undefined(void);
int topos_shim_callid_cseq(struct sip_msg *msg, str *callid, str *cseq_num);
int topos_shim_to_tag(struct sip_msg *msg, str *tag);
int topos_shim_parse_to_eoh(struct sip_msg *msg);
int topos_shim_bind_dialog(void);
void topos_shim_dlg_hidden_invite(struct sip_msg *msg);
struct lump *topos_shim_subst_after(struct lump *after, int subst);
struct lump *topos_shim_cond_diff_proto_after(struct lump *after);
int topos_shim_has_record_route_lump(struct sip_msg *msg);
void *topos_shim_find_socket(int proto, const char *ip, int ip_len, int port);
void *topos_shim_rcv_socket_ptr(struct sip_msg *msg);
void *topos_shim_next_hop_socket(struct sip_msg *msg);
int topos_shim_current_ruri(struct sip_msg *msg, str *out);
int topos_shim_fixup_str(void **param, int param_no);
int topos_shim_fixup_free_str(void **param, int param_no);
int topos_shim_fixup_str3(void **param, int param_no);
int topos_shim_fixup_free_str3(void **param, int param_no);
int topos_shim_fixup_str_pv(void **param, int param_no);
int topos_shim_fixup_free_str_pv(void **param, int param_no);
int topos_shim_fixup_str_str(void **param, int param_no);
int topos_shim_fixup_free_str_str(void **param, int param_no);
int topos_shim_param_str(struct sip_msg *msg, void *param, str *out);
int topos_shim_set_pv_str(struct sip_msg *msg, void *param, const char *s, int len);
extern pv_export_t topos_shim_pvs[];
void *topos_shim_shm_malloc(size_t size);
void topos_shim_shm_free(void *p);
int topos_shim_rcv_socket(struct sip_msg *msg, str *addr, str *port, int *proto);
int topos_shim_rpc_struct(rpc_t *rpc, void *ctx, void **handle);
int topos_shim_rpc_struct_int(rpc_t *rpc, void *handle, const char *name, int value);
int topos_shim_rpc_struct_str(rpc_t *rpc, void *handle, const char *name, const char *s, int len);
void topos_shim_rpc_fault(rpc_t *rpc, void *ctx, int code, const char *text);
int topos_shim_rpc_scan_str(rpc_t *rpc, void *ctx, str *out);
int topos_shim_rpc_add_str(rpc_t *rpc, void *ctx, const char *s, int len);
int topos_shim_set_pv_by_name(struct sip_msg *msg, str *name, const char *s, int len);

#endif
