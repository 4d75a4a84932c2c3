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

int topos_shim_parse_headers_eoh(struct sip_msg *msg)
{
	return parse_headers(msg, HDR_EOH_F, 0);
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
