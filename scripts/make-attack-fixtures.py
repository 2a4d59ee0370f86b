#!/usr/bin/env python3
"""Build tests/fixtures/attacks/*.eml and tests/fixtures/honest/*.eml: Emotet-style
attacks following the incident reports (../shared/seeds) and honest look-alikes.

Run from the repository root with the corpus beside it (../shared/corpus);
needs the `zip` command for the encrypted archives. The Office files used are
harmless test documents (see tests/fixtures/README.md, section attacks/).
Output is deterministic apart from zip timestamps, which are fixed below.
"""
import os, subprocess, tempfile, shutil, time
from email.message import EmailMessage
from email.headerregistry import Address
import email.policy

CORPUS = os.path.join('..', 'shared', 'corpus')
OUT_A = os.path.join('tests', 'fixtures', 'attacks')
OUT_H = os.path.join('tests', 'fixtures', 'honest')
POL = email.policy.SMTP.clone(max_line_length=76)
FIXED = time.mktime((2026, 11, 20, 9, 0, 0, 0, 0, -1))

DOC_SHELL = os.path.join(CORPUS, 'crafted', 'd1_document_open_shell.doc')
XLS_WSCRIPT = os.path.join(CORPUS, 'crafted', 'd2_workbook_open_wscript_shell.xls')
DOCM_DOWNLOAD = os.path.join(CORPUS, 'crafted', 'd3_autoopen_urldownloadtofile_shell.docm')
XLSM_ADODB = os.path.join(CORPUS, 'crafted', 'd4_auto_open_adodb_savetofile.xlsm')
XLM = os.path.join(CORPUS, 'oletools', 'excel4-macros', 'excel4_sample_macro.xls')
CLEAN_DOCX = os.path.join(CORPUS, 'apache-poi', 'document', 'sample.docx')

def read(p):
    return open(p, 'rb').read()

def zipped(files, password=None):
    """files: [(name, bytes)] -> zip bytes (ZipCrypto when password)."""
    d = tempfile.mkdtemp()
    try:
        names = []
        for name, data in files:
            path = os.path.join(d, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, 'wb').write(data)
            os.utime(path, (FIXED, FIXED))
            names.append(name)
        cmd = ['zip', '-q', '-X', '-D']
        if password:
            cmd += ['-P', password]
        subprocess.run(cmd + ['out.zip'] + names, cwd=d, check=True)
        return read(os.path.join(d, 'out.zip'))
    finally:
        shutil.rmtree(d)

def mail(frm, to, subject, body, date, msgid, charset='utf-8', cte='base64', html=None,
         attachments=(), headers=()):
    m = EmailMessage(policy=POL)
    m['From'] = frm
    m['To'] = to
    m['Subject'] = subject
    m['Date'] = date
    m['Message-ID'] = msgid
    for k, v in headers:
        m[k] = v
    if html is not None and body is None:
        m.set_content(html, subtype='html', charset=charset, cte=cte)
    else:
        m.set_content(body, charset=charset, cte=cte)
        if html is not None:
            m.add_alternative(html, subtype='html', charset=charset, cte=cte)
    for name, data, mtype in attachments:
        if mtype == 'message/rfc822':
            inner = email.message_from_bytes(data, policy=POL)
            m.add_attachment(inner, filename=name)
        else:
            maintype, subtype = mtype.split('/')
            m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes(policy=POL)

def save(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, name), 'wb').write(data)

TO = Address('鈴木 一郎', addr_spec='ichiro@partner.example.jp')
OUTLOOK_QUOTE = '''
-----Original Message-----
From: 鈴木 一郎 <ichiro@partner.example.jp>
Sent: Tuesday, March 3, 2026 4:15 PM
To: 山田 太郎 <taro.yamada@legal-holdings.co.jp>
Subject: {subject}

山田様
いつもお世話になっております。
{subject}の件、承知いたしました。
'''
JA_OUTLOOK_QUOTE = '''
差出人: 鈴木 一郎 <ichiro@partner.example.jp>
送信日時: 2026年3月3日 16:15
宛先: 山田 太郎 <taro.yamada@legal-holdings.co.jp>
件名: {subject}

山田様
{subject}の件、よろしくお願いいたします。
'''

def attacks():
    a = {}
    # 01: seed 001/003: hijacked reply, real person's name and address in the
    # display name, encrypted zip holding a Document_Open+Shell doc, password in body.
    subj = '請求書の送付について'
    a['01-hijacked-reply-encrypted-zip.eml'] = mail(
        '"山田 太郎 taro.yamada@legal-holdings.co.jp" <info@kansai-unrelated.example>', str(TO),
        'RE: ' + subj,
        '鈴木様\n\nいつもお世話になっております。\n請求書を添付いたしますのでご確認ください。\n\n'
        'ファイル：請求書_1121.zip\nパスワード：8Xk2pq\n\nよろしくお願いいたします。\n' + OUTLOOK_QUOTE.format(subject=subj),
        'Fri, 20 Nov 2026 09:01:00 +0900', '<a01@kansai-unrelated.example>',
        attachments=[('請求書_1121.zip', zipped([('請求書_1121.doc', read(DOC_SHELL))], '8Xk2pq'), 'application/zip')])
    # 02: seed 000: bare macro workbook, body repeats the real address, ISO-2022-JP.
    a['02-bare-xls-workbook-open.eml'] = mail(
        '"山田 太郎" <yamada@mail-relay.unrelated.example>', str(TO), '【至急】支払通知書のご確認',
        'taro.yamada@legal-holdings.co.jp\n\n鈴木様\n\n支払通知書をお送りします。\n添付ファイルを開き「編集を有効にする」をクリックしてご確認ください。\n',
        'Fri, 20 Nov 2026 10:11:00 +0900', '<a02@mail-relay.unrelated.example>', charset='iso-2022-jp', cte='7bit',
        attachments=[('支払通知書.xls', read(XLS_WSCRIPT), 'application/vnd.ms-excel')])
    # 03: seed 002: docm download link in the body, no attachment.
    a['03-link-to-docm.eml'] = mail(
        'Accounts <accounts@billing-notice.example>', str(TO), 'Invoice #88213 - payment due',
        'Dear customer,\n\nYour invoice is ready. Download it here:\n'
        'http://compromised-blog.example/wp-content/uploads/2026/11/Invoice_88213.docm\n\nRegards,\nAccounts\n',
        'Fri, 20 Nov 2026 01:00:00 +0000', '<a03@billing-notice.example>', cte='quoted-printable')
    # 04: HTML-only mail (Shift_JIS) with the password in a table, AES-less ZipCrypto zip with an xlsm.
    a['04-html-only-password-xlsm.eml'] = mail(
        '"経理部 佐藤" <keiri@unrelated-corp.example>', str(TO), '賞与明細のご案内', None,
        'Fri, 20 Nov 2026 11:30:00 +0900', '<a04@unrelated-corp.example>', charset='shift_jis', cte='base64',
        html='<html><body><p>各位</p><p>冬季賞与の明細を送付いたします。</p>'
             '<table><tr><td>解凍パスワード</td><td>【Bonus2026】</td></tr></table></body></html>',
        attachments=[('賞与明細.zip', zipped([('賞与明細.xlsm', read(XLSM_ADODB))], 'Bonus2026'), 'application/zip')])
    # 05: a macro document renamed to .pdf.
    a['05-renamed-doc-as-pdf.eml'] = mail(
        'Shipping Desk <desk@parcel-tracking.example>', str(TO), 'Your parcel could not be delivered',
        'Please open the attached delivery note and confirm your address.\n',
        'Fri, 20 Nov 2026 02:00:00 +0000', '<a05@parcel-tracking.example>',
        attachments=[('delivery_note.pdf', read(DOC_SHELL), 'application/pdf')])
    # 06: Excel 4.0 macro sheet with Auto_Open.
    a['06-xlm-auto-open.eml'] = mail(
        'Payroll <payroll@hr-update.example>', str(TO), 'Salary adjustment for December',
        'See the attached spreadsheet and enable content to view your new salary.\n',
        'Fri, 20 Nov 2026 03:00:00 +0000', '<a06@hr-update.example>',
        attachments=[('salary_adjustment.xls', read(XLM), 'application/vnd.ms-excel')])
    # 07: zip inside zip, plain, with a docm that downloads and runs.
    inner = zipped([('Rechnung.docm', read(DOCM_DOWNLOAD))])
    a['07-nested-zip-docm.eml'] = mail(
        'Buchhaltung <rechnung@lieferant-info.example>', str(TO), 'AW: Rechnung 2026-1144',
        'Guten Tag,\n\nanbei die Rechnung.\n\nMit freundlichen Grüßen\n',
        'Fri, 20 Nov 2026 04:00:00 +0000', '<a07@lieferant-info.example>',
        attachments=[('Rechnung.zip', zipped([('Rechnung_2026-1144.zip', inner)]), 'application/zip')])
    # 08: forwarded message (attached .eml) carrying the macro workbook.
    fwd = mail('Hanako Sato <hanako@example.co.jp>', 'team@example.co.jp', '見積書', '見積書を添付します。\n',
               'Mon, 02 Mar 2026 10:00:00 +0900', '<inner08@example.co.jp>',
               attachments=[('見積書.xlsm', read(XLSM_ADODB), 'application/vnd.ms-excel.sheet.macroEnabled.12')])
    a['08-attached-message-with-macro.eml'] = mail(
        '"佐藤 花子" <h.sato@free-relay.example>', str(TO), 'Fw: 見積書',
        '転送します。ご確認ください。\n', 'Fri, 20 Nov 2026 12:00:00 +0900', '<a08@free-relay.example>',
        attachments=[('見積書.eml', fwd, 'message/rfc822')])
    # 09: password on the line after the cue, full-width, Christmas lure.
    a['09-password-next-line-fullwidth.eml'] = mail(
        'Events <events@xmas-party.example>', str(TO), 'クリスマスパーティーのご案内',
        'ご案内を添付いたします。\n\nパスワード\n　ｘｍａｓ２０２６\n\nよろしくお願いします。\n',
        'Fri, 20 Nov 2026 13:00:00 +0900', '<a09@xmas-party.example>', cte='quoted-printable',
        attachments=[('案内状.zip', zipped([('案内状.doc', read(DOC_SHELL))], 'xmas2026'), 'application/zip')])
    # 10: shortcut and script inside a zip (successors of Emotet used .lnk and .js).
    lnk = bytes([0x4C, 0, 0, 0, 1, 0x14, 2, 0]) + bytes(68) + b'C:\\Windows\\System32\\cmd.exe /c echo test'
    a['10-lnk-and-js-in-zip.eml'] = mail(
        'Scanner <scanner@office-devices.example>', str(TO), 'Scanned document 2026-11-20',
        'Scanned document attached.\n', 'Fri, 20 Nov 2026 05:00:00 +0000', '<a10@office-devices.example>',
        attachments=[('scan_20261120.zip', zipped([('scan_20261120.pdf.lnk', lnk), ('readme.js', b'WScript.Echo("test");\n')]), 'application/zip')])
    # 11: hijacked reply, Japanese Outlook quote, no References, link to a zip.
    subj = '打ち合わせ日程の件'
    a['11-fake-reply-japanese-outlook-link.eml'] = mail(
        '"山田 太郎" <yamada.t@sakura-hosting-user.example>', str(TO), 'RE: ' + subj,
        '鈴木様\n\n資料を下記からダウンロードしてください。\nhttps://files-share.example/d/資料_0311.zip\n\n山田\n' + JA_OUTLOOK_QUOTE.format(subject=subj),
        'Fri, 20 Nov 2026 14:00:00 +0900', '<a11@sakura-hosting-user.example>', charset='iso-2022-jp', cte='7bit')
    # 12: HTML link whose text shows one domain and whose href goes to another, to an xlsm.
    a['12-link-text-mismatch-xlsm.eml'] = mail(
        'IT Support <it-support@helpdesk-notice.example>', str(TO), 'Password expiry notice',
        'Your mailbox password expires today. Download the form: https://intranet.partner.example.jp/forms/renew.xlsm\n',
        'Fri, 20 Nov 2026 06:00:00 +0000', '<a12@helpdesk-notice.example>',
        html='<html><body><p>Your mailbox password expires today.</p><p>Download the form: '
             '<a href="http://cdn-files.attacker-site.example/renew.xlsm">https://intranet.partner.example.jp/forms/renew.xlsm</a></p></body></html>')
    return a

def honest():
    h = {}
    # Honest PPAP: encrypted zip, password in a separate mail.
    h['01-ppap-password-separately.eml'] = mail(
        Address('佐藤 花子', addr_spec='hanako.sato@example.co.jp'), str(TO), '議事録の送付',
        '鈴木様\n\n本日の議事録を添付いたします。\nパスワードは別途お送りいたします。\n\n佐藤\n',
        'Fri, 20 Nov 2026 11:00:00 +0900', '<h01@example.co.jp>', charset='iso-2022-jp', cte='7bit',
        attachments=[('議事録.zip', zipped([('議事録.docx', read(CLEAN_DOCX))], 'Meeting2026'), 'application/zip')])
    # The PPAP password mail itself: password-like text, no archive.
    h['02-ppap-password-mail.eml'] = mail(
        Address('佐藤 花子', addr_spec='hanako.sato@example.co.jp'), str(TO), 'パスワードのご連絡',
        '鈴木様\n\n先ほどお送りした議事録.zipのパスワードです。\nパスワード：Meeting2026\n\n佐藤\n',
        'Fri, 20 Nov 2026 11:01:00 +0900', '<h02@example.co.jp>', charset='iso-2022-jp', cte='7bit')
    # A genuine reply with References, quoting the thread, with a clean docx.
    h['03-genuine-reply-with-docx.eml'] = mail(
        Address('山田 太郎', addr_spec='taro.yamada@legal-holdings.co.jp'), str(TO), 'RE: 契約書のドラフト',
        '鈴木様\n\n修正版を添付します。\n\n山田\n' + OUTLOOK_QUOTE.format(subject='契約書のドラフト').replace('Tuesday, March 3, 2026', 'Thursday, November 19, 2026'),
        'Fri, 20 Nov 2026 15:00:00 +0900', '<h03@legal-holdings.co.jp>',
        headers=[('In-Reply-To', '<orig03@partner.example.jp>'), ('References', '<orig03@partner.example.jp>')],
        attachments=[('契約書_修正版.docx', read(CLEAN_DOCX), 'application/vnd.openxmlformats-officedocument.wordprocessingml.document')])
    # Newsletter with links to a PDF and a brand in the display name from its own domain.
    h['04-newsletter.eml'] = mail(
        'Example Cloud News <news@examplecloud.example>', str(TO), 'November product update',
        'Read the release notes: https://examplecloud.example/notes/2026-11.pdf\nUnsubscribe: https://examplecloud.example/u/123\n',
        'Fri, 20 Nov 2026 07:00:00 +0000', '<h04@examplecloud.example>',
        html='<html><body><a href="https://examplecloud.example/notes/2026-11.pdf">examplecloud.example/notes</a></body></html>',
        headers=[('List-Unsubscribe', '<https://examplecloud.example/u/123>')])
    # Calendar notification on someone's behalf.
    h['05-calendar-via-service.eml'] = mail(
        '"Taro Yamada (via Google Calendar)" <calendar-notification@google.com>', str(TO),
        'Invitation: 打ち合わせ @ Tue Nov 24, 2026', 'Taro Yamada has invited you to a meeting.\n',
        'Fri, 20 Nov 2026 08:00:00 +0000', '<h05@google.com>')
    # A plain business mail with a clean xlsx.
    h['06-plain-with-xlsx.eml'] = mail(
        Address('Ichiro Suzuki', addr_spec='ichiro@partner.example.jp'), 'hanako.sato@example.co.jp', 'Q3 figures',
        'Hi Hanako,\n\nthe Q3 figures are attached.\n\nIchiro\n', 'Fri, 20 Nov 2026 09:30:00 +0000', '<h06@partner.example.jp>',
        attachments=[('q3.zip', zipped([('q3.docx', read(CLEAN_DOCX))]), 'application/zip')])
    return h

if __name__ == '__main__':
    for name, data in attacks().items():
        save(OUT_A, name, data)
    for name, data in honest().items():
        save(OUT_H, name, data)
    print('wrote', len(attacks()), 'attacks and', len(honest()), 'honest messages')
