-- A clean message: the milter adds X-Malspam-Verdict: accept and
-- X-Malspam-Score: 0, deletes a forged X-Malspam-Verdict, nothing else.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local t = require("common")

local conn = t.connect()
t.message(conn, "CLEAN1", {
	{"From", "Alice <alice@sender.example>"},
	{"To", "bob@rcpt.example"},
	{"Subject", "minutes"},
	{"X-Malspam-Verdict", "accept"},
}, "Hello Bob,\r\nthe minutes are attached.\r\n")

if not mt.eom_check(conn, MT_HDRADD, "X-Malspam-Verdict", "accept") then
	t.fail("no X-Malspam-Verdict: accept")
end
if not mt.eom_check(conn, MT_HDRADD, "X-Malspam-Score", "0") then
	t.fail("no X-Malspam-Score: 0")
end
if mt.eom_check(conn, MT_HDRADD, "X-Malspam-Findings") then
	t.fail("findings on a clean message")
end
if not mt.eom_check(conn, MT_HDRDELETE, "X-Malspam-Verdict") then
	t.fail("the forged X-Malspam-Verdict was not deleted")
end
if mt.eom_check(conn, MT_QUARANTINE) then
	t.fail("a clean message was quarantined")
end
mt.disconnect(conn)
mt.echo("clean: ok")
