-- KEMI routing script (app_lua) for the topos_rs tests: the same routing as
-- cfg-examples/kamailio.cfg, with topos_rs called as KSR.topos_rs.*.

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
		KSR.sl.sl_send_reply(200, "OK")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			KSR.topos_rs.topos_request()
			KSR.tm.t_relay()
		end
		return 1
	end
	if KSR.siputils.has_totag() > 0 then
		-- An ACK for a negative reply (its INVITE's branch) is absorbed by
		-- tm (t_check_trans() answers 0); any other goes on like every
		-- in-dialog request, through topos_request().
		if KSR.is_ACK() and KSR.tm.t_check_trans() == 0 then
			return 1
		end
		KSR.rr.loose_route()
		if KSR.topos_rs.topos_request() < 0 then
			KSR.sl.sl_send_reply(404, "Not Found")
			return 1
		end
		if KSR.is_BYE() then
			KSR.topos_rs.billing_stop()
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
	end
	KSR.topos_rs.topos_request()
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	return 1
end

function ksr_reply_route()
	KSR.topos_rs.topos_reply()
	local status = KSR.pv.geti("$rs")
	if status >= 200 and status < 300 and KSR.pv.get("$rm") == "INVITE" then
		KSR.topos_rs.billing_start()
	end
	return 1
end
