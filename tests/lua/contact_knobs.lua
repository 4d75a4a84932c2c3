-- KEMI routing script (app_lua) for tests/contact_knobs.rs: the routing of
-- tests/lua/routing.lua, with topos_set_contact() and topos_trust() called
-- as KSR.topos_rs.* from headers the test peers send (X-Caller-User,
-- X-Caller-Host, X-Trust, X-Crlf on the INVITE; X-Callee-User, X-Callee-Host on a
-- reply).

local function hdr(name)
	return KSR.pv.gete("$hdr(" .. name .. ")")
end

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.is_ACK() and KSR.tm.t_check_trans() == 0 then
			return 1
		end
		KSR.rr.loose_route_mode(1)
		if KSR.topos_rs.topos_request() < 0 then
			KSR.sl.sl_send_reply(404, "Not Found")
			return 1
		end
		KSR.tm.t_relay()
		return 1
	end
	if KSR.tmx.t_precheck_trans() > 0 then
		KSR.tm.t_check_trans()
		return 1
	end
	KSR.tm.t_check_trans()
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		if hdr("X-Caller-User") ~= "" or hdr("X-Caller-Host") ~= "" then
			KSR.topos_rs.topos_set_contact("caller", hdr("X-Caller-User"), hdr("X-Caller-Host"))
		end
		-- A user part with CR LF (a header cannot carry one; a script can).
		if hdr("X-Crlf") ~= "" then
			if KSR.topos_rs.topos_set_contact("caller", "a\r\nb", "") < 0 then
				KSR.hdr.append("X-Set-Contact: refused\r\n")
			end
		end
		if hdr("X-Trust") ~= "" then
			KSR.topos_rs.topos_trust(hdr("X-Trust"))
		end
	end
	KSR.topos_rs.topos_request()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	return 1
end

function ksr_reply_route()
	if hdr("X-Callee-User") ~= "" or hdr("X-Callee-Host") ~= "" then
		KSR.topos_rs.topos_set_contact("callee", hdr("X-Callee-User"), hdr("X-Callee-Host"))
	end
	KSR.topos_rs.topos_reply()
	return 1
end
