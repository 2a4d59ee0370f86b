-- A message over milter.max_message_size (the test config sets 2000 bytes):
-- passed, not dropped, and tagged "not scanned: too large".
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local t = require("common")

local conn = t.connect()
local body = string.rep("All work and no play makes Jack a dull boy.\r\n", 100)
t.message(conn, "TAGGED1", {
	{"From", "Alice <alice@sender.example>"},
	{"To", "bob@rcpt.example"},
	{"Subject", "big"},
}, body)

if not mt.eom_check(conn, MT_HDRADD, "X-Malspam-Verdict", "tag") then
	t.fail("no X-Malspam-Verdict: tag")
end
local findings = mt.getheader(conn, "X-Malspam-Findings", 0)
if findings == nil or not string.find(findings, "scan.too_large", 1, true) then
	t.fail("X-Malspam-Findings lacks scan.too_large: " .. tostring(findings))
end
if mt.eom_check(conn, MT_QUARANTINE) then
	t.fail("an oversize message was quarantined")
end
mt.disconnect(conn)
mt.echo("tagged: ok")
