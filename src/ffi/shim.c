/* C side of the FFI boundary: Kamailio APIs that exist only as macros or
 * static inline functions, compiled with the same -D set as Kamailio. */
#include "wrapper.h"

/* get_debug_level() honours the per-module level (debug/log level of
 * "topos_rs" set with kamcmd or modparam("debugger", ...)). */
int topos_shim_log_enabled(int level)
{
	return is_printable(level);
}

/* The text is passed as data behind a constant format: message text (which
 * may hold SIP bytes) is never interpreted as printf directives. */
void topos_shim_log(int level, const char *text, int len)
{
	LOG_FX(DEFAULT_FACILITY, level, NULL, "topos_rs: ", NULL, "%.*s\n", len,
			text);
}

void *topos_shim_pkg_malloc(size_t size)
{
	return pkg_malloc(size);
}

void topos_shim_pkg_free(void *p)
{
	pkg_free(p);
}

int topos_shim_load_tm(struct tm_binds *tmb)
{
	return load_tm_api(tmb);
}

int topos_shim_route_type(void)
{
	return get_route_type();
}

const char *topos_shim_runtime_dir(void)
{
	return runtime_dir;
}

void *topos_shim_t_undefined(void)
{
	return (void *)T_UNDEFINED;
}

/* Call-ID body and CSeq number of a request (get_cseq() is a macro). */
int topos_shim_callid_cseq(struct sip_msg *msg, str *callid, str *cseq_num)
{
	if(parse_headers(msg, HDR_CALLID_F | HDR_CSEQ_F, 0) < 0 || msg->callid == NULL
			|| msg->cseq == NULL || msg->cseq->parsed == NULL)
		return -1;
	*callid = msg->callid->body;
	trim(callid);
	*cseq_num = get_cseq(msg)->number;
	return 0;
}

/* The To-tag of a message as Kamailio parsed it (empty if none). */
int topos_shim_to_tag(struct sip_msg *msg, str *tag)
{
	tag->s = NULL;
	tag->len = 0;
	if(parse_headers(msg, HDR_TO_F, 0) < 0 || msg->to == NULL
			|| msg->to->parsed == NULL)
		return -1;
	*tag = get_to(msg)->tag_value;
	return 0;
}

/* Parses every header (HDR_EOH_F is a macro): sets msg->eoh, which
 * del_lump() reads to put a lump in the body into the body list (the core
 * then fixes Content-Length). */
int topos_shim_parse_to_eoh(struct sip_msg *msg)
{
	if(parse_headers(msg, HDR_EOH_F, 0) < 0 || msg->eoh == NULL)
		return -1;
	return 0;
}

/* Fixup for (string with pseudo-variables, writable pseudo-variable). */
int topos_shim_fixup_str_pv(void **param, int param_no)
{
	if(param_no == 1)
		return fixup_spve_null(param, 1);
	if(param_no == 2) {
		if(fixup_pvar_null(param, 1) < 0)
			return -1;
		if(((pv_spec_t *)*param)->setf == NULL) {
			LM_ERR("the second parameter must be a writable variable\n");
			fixup_free_pvar_null(param, 1);
			return -1;
		}
		return 0;
	}
	return 0;
}

int topos_shim_fixup_free_str_pv(void **param, int param_no)
{
	if(param_no == 1)
		return fixup_free_spve_null(param, 1);
	if(param_no == 2)
		return fixup_free_pvar_null(param, 1);
	return 0;
}

/* Fixups for one and for three strings with pseudo-variables. */
int topos_shim_fixup_str(void **param, int param_no)
{
	return fixup_spve_null(param, param_no);
}

int topos_shim_fixup_free_str(void **param, int param_no)
{
	return fixup_free_spve_null(param, param_no);
}

int topos_shim_fixup_str3(void **param, int param_no)
{
	return fixup_spve_all(param, param_no);
}

int topos_shim_fixup_free_str3(void **param, int param_no)
{
	return fixup_free_spve_all(param, param_no);
}

int topos_shim_fixup_str_str(void **param, int param_no)
{
	return fixup_spve_spve(param, param_no);
}

int topos_shim_fixup_free_str_str(void **param, int param_no)
{
	return fixup_free_spve_spve(param, param_no);
}

/* The value of a fixed-up string parameter for this message. */
int topos_shim_param_str(struct sip_msg *msg, void *param, str *out)
{
	return fixup_get_svalue(msg, (gparam_t *)param, out);
}

/* Sets a fixed-up writable pseudo-variable to a string (copied by it). */
int topos_shim_set_pv_str(struct sip_msg *msg, void *param, const char *s, int len)
{
	pv_spec_t *sp = (pv_spec_t *)param;
	pv_value_t val;

	memset(&val, 0, sizeof(val));
	val.flags = PV_VAL_STR;
	val.rs.s = (char *)s;
	val.rs.len = len;
	return sp->setf(msg, &sp->pvp, (int)EQ_T, &val);
}

/* $billing(<field>): the call billing_stop() just billed. The field names
 * and the values come from Rust (topos_rs_billing_field_index and
 * topos_rs_billing_value, in src/ffi/exports.rs). */
int topos_rs_billing_field_index(const char *name, int len);
int topos_rs_billing_value(struct sip_msg *msg, int field, const char **s, int *len);

static int topos_pv_parse_billing_name(pv_spec_t *sp, str *in)
{
	int idx;

	if(sp == NULL || in == NULL || in->len <= 0)
		return -1;
	idx = topos_rs_billing_field_index(in->s, in->len);
	if(idx < 0) {
		LM_ERR("unknown $billing field: %.*s (duration, billed, cost, currency,"
			   " rate, hangup)\n",
				in->len, in->s);
		return -1;
	}
	sp->pvp.pvn.type = PV_NAME_INTSTR;
	sp->pvp.pvn.u.isname.type = 0;
	sp->pvp.pvn.u.isname.name.n = idx;
	return 0;
}

static int topos_pv_get_billing(struct sip_msg *msg, pv_param_t *param, pv_value_t *res)
{
	str v;

	if(topos_rs_billing_value(msg, param->pvn.u.isname.name.n, (const char **)&v.s, &v.len)
			< 0)
		return pv_get_null(msg, param, res);
	return pv_get_strval(msg, param, res, &v);
}

pv_export_t topos_shim_pvs[] = {
	{{"billing", sizeof("billing") - 1}, PVT_OTHER, topos_pv_get_billing, 0,
			topos_pv_parse_billing_name, 0, 0, 0},
	{{0, 0}, 0, 0, 0, 0, 0, 0, 0}
};

void *topos_shim_shm_malloc(size_t size)
{
	return shm_malloc(size);
}

void topos_shim_shm_free(void *p)
{
	shm_free(p);
}

/* The local socket a message arrived on: address, port (the advertised
 * ones if the socket has them), and the transport the message used (WS and
 * WSS ride on a TCP or TLS socket, so msg->rcv.proto, not the socket's). */
int topos_shim_rcv_socket(struct sip_msg *msg, str *addr, str *port, int *proto)
{
	struct socket_info *si = msg->rcv.bind_address;
	if(si == NULL)
		return -1;
	*addr = (si->useinfo.name.len > 0) ? si->useinfo.name : si->address_str;
	*port = (si->useinfo.port_no > 0) ? si->useinfo.port_no_str : si->port_no_str;
	*proto = msg->rcv.proto;
	return 0;
}

/* Substitution and condition lumps (filled in or decided by the core when
 * it builds each copy of the message, as record_route() uses them), after
 * `after` in its chain. NULL when out of memory. */
struct lump *topos_shim_subst_after(struct lump *after, int subst)
{
	return insert_subst_lump_after(after, (enum lump_subst)subst, 0);
}

/* The rest of the chain only when the message leaves over another transport
 * than the one it came in on (COND_IF_DIFF_PROTO). */
struct lump *topos_shim_cond_diff_proto_after(struct lump *after)
{
	return insert_cond_lump_after(after, COND_IF_DIFF_PROTO, 0);
}

/* True if the script's record_route() already queued its Record-Route for
 * this request (rr anchors it with the type HDR_RECORDROUTE_T). */
int topos_shim_has_record_route_lump(struct sip_msg *msg)
{
	struct lump *l;

	for(l = msg->add_rm; l; l = l->next)
		if(l->type == HDR_RECORDROUTE_T)
			return 1;
	return 0;
}

/* The socket Kamailio listens on with this protocol, address and port
 * (NULL if none): trusted_socket values, checked at start-up. */
void *topos_shim_find_socket(int proto, const char *ip, int ip_len, int port)
{
	str s;
	struct ip_addr *addr;

	s.s = (char *)ip;
	s.len = ip_len;
	addr = str2ip(&s);
	if(addr == NULL)
		addr = str2ip6(&s);
	if(addr == NULL)
		return NULL;
	return find_si(addr, (unsigned short)port, (unsigned short)proto);
}

/* The local socket a request arrived on (NULL for a local request). */
void *topos_shim_rcv_socket_ptr(struct sip_msg *msg)
{
	return msg->rcv.bind_address;
}

/* The socket t_relay() will send this request on, as far as it can be known
 * before the relay: the forced socket ($fs, force_send_socket()), else the
 * one the core picks for the next hop (the destination URI, else the
 * Request-URI) when that names an IP address; NULL when the next hop is a
 * DNS name (resolved only by the relay). */
void *topos_shim_next_hop_socket(struct sip_msg *msg)
{
	struct sip_uri uri;
	str *next;
	struct ip_addr *ip;
	union sockaddr_union su;
	int proto;
	unsigned short port;

	if(msg->force_send_socket)
		return msg->force_send_socket;
	next = (msg->dst_uri.s && msg->dst_uri.len > 0) ? &msg->dst_uri : GET_RURI(msg);
	if(next == NULL || next->s == NULL || next->len <= 0
			|| parse_uri(next->s, next->len, &uri) < 0)
		return NULL;
	ip = str2ip(&uri.host);
	if(ip == NULL)
		ip = str2ip6(&uri.host);
	if(ip == NULL)
		return NULL;
	proto = uri.proto;
	if(proto == PROTO_NONE)
		proto = (uri.type == SIPS_URI_T || uri.type == TELS_URI_T) ? PROTO_TLS : PROTO_UDP;
	port = uri.port_no ? uri.port_no : ((proto == PROTO_TLS) ? SIPS_PORT : SIP_PORT);
	init_su(&su, ip, port);
	return get_send_socket2(0, &su, proto, 0);
}

/* The Request-URI the request will be relayed with (after the script's
 * changes: $ru). */
int topos_shim_current_ruri(struct sip_msg *msg, str *out)
{
	str *u = GET_RURI(msg);
	if(u == NULL || u->s == NULL)
		return -1;
	*out = *u;
	return 0;
}

/* RPC replies (rpc_t's functions are variadic: called from C only). */
int topos_shim_rpc_struct(rpc_t *rpc, void *ctx, void **handle)
{
	return rpc->add(ctx, "{", handle);
}

int topos_shim_rpc_struct_int(rpc_t *rpc, void *handle, const char *name, int value)
{
	return rpc->struct_add(handle, "d", name, value);
}

int topos_shim_rpc_struct_str(rpc_t *rpc, void *handle, const char *name, const char *s, int len)
{
	str v = {(char *)s, len};
	return rpc->struct_add(handle, "S", name, &v);
}

void topos_shim_rpc_fault(rpc_t *rpc, void *ctx, int code, const char *text)
{
	rpc->fault(ctx, code, "%s", text);
}

int topos_shim_rpc_scan_str(rpc_t *rpc, void *ctx, str *out)
{
	return rpc->scan(ctx, "S", out);
}

int topos_shim_rpc_add_str(rpc_t *rpc, void *ctx, const char *s, int len)
{
	str v = {(char *)s, len};
	return rpc->add(ctx, "S", &v);
}

/* KEMI: set a pseudo-variable given by name ("$var(x)") to a string. */
int topos_shim_set_pv_by_name(struct sip_msg *msg, str *name, const char *s, int len)
{
	pv_spec_t *sp = pv_cache_get(name);
	pv_value_t val;

	if(sp == NULL || sp->setf == NULL) {
		LM_ERR("cannot set variable %.*s\n", name->len, name->s);
		return -1;
	}
	memset(&val, 0, sizeof(val));
	val.flags = PV_VAL_STR;
	val.rs.s = (char *)s;
	val.rs.len = len;
	return sp->setf(msg, &sp->pvp, (int)EQ_T, &val);
}

/* The dialog module, if loaded: topos_rs hides the caller side's
 * Record-Routes from the callee, so the callee's 2xx lists none of them;
 * the dialog module, which counted them in the INVITE, would skip as many
 * of the callee side's own entries when it keeps the callee's route set
 * (its BYEs would then bypass the callee side's proxies). For a hidden
 * INVITE the count is set to none. */
#include "core/parser/parse_from.h"
#include "modules/dialog/dlg_hash.h"
#include "modules/dialog/dlg_load.h"

static struct dlg_binds topos_dlgb;
static int topos_dlg_bound = 0;

/* Implemented in Rust (src/ffi/dialog_module.rs): 1 if topos_request()
 * hid this request. */
int topos_rs_request_was_hidden(struct sip_msg *msg);

static void topos_dlg_created(struct dlg_cell *dlg, int type, struct dlg_cb_params *p)
{
	if(dlg != NULL && p != NULL && p->req != NULL
			&& topos_rs_request_was_hidden(p->req) == 1)
		dlg->from_rr_nb = 0;
}

/* 1: bound to the dialog module; 0: it is not loaded; -1: error. */
int topos_shim_bind_dialog(void)
{
	if(find_export("load_dlg", 0, 0) == NULL)
		return 0;
	if(load_dlg_api(&topos_dlgb) < 0)
		return -1;
	if(topos_dlgb.register_dlgcb(NULL, DLGCB_CREATED, topos_dlg_created, NULL, NULL)
			!= 0)
		return -1;
	topos_dlg_bound = 1;
	return 1;
}

/* A dialog the dialog module already made for this (hidden) INVITE. */
void topos_shim_dlg_hidden_invite(struct sip_msg *msg)
{
	struct dlg_cell *dlg;

	if(!topos_dlg_bound)
		return;
	dlg = topos_dlgb.get_dlg(msg);
	if(dlg == NULL)
		return;
	dlg->from_rr_nb = 0;
	topos_dlgb.release_dlg(dlg);
}

/* A request Kamailio sends itself in a dialog the dialog module keeps: 1 if
 * it goes to the callee's leg (its Call-ID is the dialog's and its From-tag
 * the caller's), 0 if not, -1 if the module keeps no such dialog. */
int topos_shim_dlg_to_callee(struct sip_msg *msg)
{
	struct dlg_cell *dlg;
	str *ftag;
	int r;

	if(!topos_dlg_bound || parse_from_header(msg) < 0 || get_from(msg) == NULL
			|| parse_headers(msg, HDR_CALLID_F, 0) < 0 || msg->callid == NULL)
		return -1;
	dlg = topos_dlgb.get_dlg(msg);
	if(dlg == NULL)
		return -1;
	ftag = &get_from(msg)->tag_value;
	r = dlg->tag[DLG_CALLER_LEG].len == ftag->len
		&& memcmp(dlg->tag[DLG_CALLER_LEG].s, ftag->s, ftag->len) == 0
		&& dlg->callid.len == msg->callid->body.len
		&& memcmp(dlg->callid.s, msg->callid->body.s, dlg->callid.len) == 0;
	topos_dlgb.release_dlg(dlg);
	return r;
}

/* The egress gate (ffi/egress.rs). The core hands every message it sends to
 * the SREV_NET_DATA_OUT callbacks, with the buffer about to go out and its
 * destination. topos_rs's check reads the buffer; when it says "drop", the
 * message must not leave. The core offers no "drop" answer, so the gate
 * empties the buffer (callbacks after this one parse nothing, log nothing of
 * it) and gives the destination no protocol: msg_send_buffer() then fails
 * ("unknown proto 0") without sending anything. NULL would be cleaner, but
 * other modules' callbacks run after this one and read the buffer unchecked. */
static int (*topos_egress_check)(const char *buf, int len) = 0;

static int topos_shim_net_data_out(sr_event_param_t *evp)
{
	str *out;

	if(evp == NULL || evp->data == NULL || topos_egress_check == 0)
		return 0;
	out = (str *)evp->data;
	if(out->s == NULL || out->len <= 0)
		return 0;
	/* 0: it may leave; 1: refused; -1: the check failed (fail closed) */
	if(topos_egress_check(out->s, out->len) != 0) {
		out->s[0] = '\0';
		out->len = 0;
		if(evp->dst)
			evp->dst->proto = PROTO_NONE;
	}
	return 0;
}

int topos_shim_register_egress(int (*check)(const char *buf, int len))
{
	topos_egress_check = check;
	return sr_event_register_cb(SREV_NET_DATA_OUT, topos_shim_net_data_out);
}

/* True if the top Vias of two requests name the same transaction as tm
 * matches an ACK to its INVITE (RFC 3261 17.2.3; tm's via_matching()): the
 * same branch and the same sent-by. */
int topos_shim_same_top_via(struct sip_msg *a, struct sip_msg *b)
{
	struct via_body *va, *vb;

	if(a == NULL || b == NULL || a->via1 == NULL || b->via1 == NULL)
		return 0;
	va = a->via1;
	vb = b->via1;
	if(va->branch == NULL || vb->branch == NULL
			|| va->branch->value.len != vb->branch->value.len
			|| memcmp(va->branch->value.s, vb->branch->value.s,
					   vb->branch->value.len)
					   != 0)
		return 0;
	if(va->host.len != vb->host.len
			|| memcmp(va->host.s, vb->host.s, vb->host.len) != 0)
		return 0;
	return va->port == vb->port;
}

/* tm's bucket lock, as tm's own lock_hash()/unlock_hash() take it (tm does
 * not export them): recursive within one process, so a look-up from a
 * callback of a process that holds the bucket already cannot deadlock. */
static void topos_shim_lock_bucket(struct s_table *table, unsigned int i)
{
	int mypid = my_pid();

	if(atomic_get(&table->entries[i].locker_pid) != mypid) {
		lock(&table->entries[i].mutex);
		atomic_set(&table->entries[i].locker_pid, mypid);
	} else {
		table->entries[i].rec_lock_level++;
	}
}

static void topos_shim_unlock_bucket(struct s_table *table, unsigned int i)
{
	if(table->entries[i].rec_lock_level == 0) {
		atomic_set(&table->entries[i].locker_pid, 0);
		unlock(&table->entries[i].mutex);
	} else {
		table->entries[i].rec_lock_level--;
	}
}

/* tm's INVITE transaction of a Call-ID and CSeq number (the newest one):
 * what the module needs of it, read under the bucket's lock. tm's own
 * t_lookup_callid() takes the newest transaction of any method with that
 * Call-ID and CSeq number, which is a CANCEL's once one came in.
 * `ours`: the transaction carries callback `cb` (topos_rs hid it).
 * `msg` (may be NULL): compare its top Via with the INVITE's.
 * Returns 1 if found, 0 if not, -1 without tm's table. */
int topos_shim_find_invite(struct tm_binds *tmb, str *callid, str *cseq,
		transaction_cb *cb, struct sip_msg *msg, unsigned int *status,
		int *ours, int *same_via)
{
	struct s_table *table;
	struct cell *c;
	struct sip_msg *r;
	struct tm_callback *t;
	unsigned int h;
	int found = 0;

	if(tmb == NULL || tmb->get_table == NULL || (table = tmb->get_table()) == NULL)
		return -1;
	h = hash(*callid, *cseq);
	topos_shim_lock_bucket(table, h);
	clist_foreach(&table->entries[h], c, next_c)
	{
		r = c->uas.request;
		if(r == NULL || r->REQ_METHOD != METHOD_INVITE || r->callid == NULL
				|| r->cseq == NULL || r->cseq->parsed == NULL)
			continue;
		if(r->callid->body.len != callid->len
				|| memcmp(r->callid->body.s, callid->s, callid->len) != 0
				|| get_cseq(r)->number.len != cseq->len
				|| memcmp(get_cseq(r)->number.s, cseq->s, cseq->len) != 0)
			continue;
		found = 1;
		*status = c->uas.status;
		*ours = 0;
		for(t = c->tmcb_hl.first; t; t = t->next) {
			if(t->callback == cb) {
				*ours = 1;
				break;
			}
		}
		*same_via = msg ? topos_shim_same_top_via(msg, r) : 0;
		break;
	}
	topos_shim_unlock_bucket(table, h);
	return found;
}
