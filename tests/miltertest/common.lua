-- Shared by the miltertest scripts: connect to the milter that
-- tests/miltertest.rs started (MILTER_SOCKET, Sendmail style
-- "inet:PORT@127.0.0.1") and run one message up to end of message.

local M = {}

function M.fail(what)
	error("FAILED: " .. what)
end

function M.check(result, what)
	if result ~= nil then
		M.fail(what .. ": " .. tostring(result))
	end
end

function M.connect()
	local socket = os.getenv("MILTER_SOCKET")
	if socket == nil then
		M.fail("MILTER_SOCKET is not set")
	end
	local conn = mt.connect(socket, 20, 0.25)
	if conn == nil then
		M.fail("cannot connect to " .. socket)
	end
	M.check(mt.negotiate(conn, nil, nil, nil), "negotiate")
	M.check(mt.conninfo(conn, "client.sender.example", "192.0.2.25"), "conninfo")
	M.check(mt.helo(conn, "client.sender.example"), "helo")
	return conn
end

-- headers: list of {name, value}; body: the body text (CRLF line ends).
function M.message(conn, queue_id, headers, body)
	M.check(mt.macro(conn, SMFIC_MAIL, "{auth_authen}", ""), "macro")
	M.check(mt.mailfrom(conn, "<alice@sender.example>"), "mailfrom")
	M.check(mt.rcptto(conn, "<bob@rcpt.example>"), "rcptto")
	for _, h in ipairs(headers) do
		M.check(mt.header(conn, h[1], h[2]), "header " .. h[1])
	end
	M.check(mt.macro(conn, SMFIC_RCPT, "i", queue_id), "macro i")
	M.check(mt.eoh(conn), "eoh")
	M.check(mt.bodystring(conn, body), "body")
	M.check(mt.eom(conn), "eom")
	if mt.getreply(conn) ~= SMFIR_CONTINUE then
		M.fail("end of message: expected continue")
	end
end

return M
