"""Reading and organising in the webmail with Python's urllib, checked over IMAP with
imaplib: paging and sorting a folder of 121 messages, an inline (cid:) image and an
attachment served from their parts, remote images held back until asked for, read and flag
changes, delete to Trash and restore, spam and not spam, archive, move, emptying the Trash,
and creating, renaming and deleting folders. Every change the web makes is seen by IMAP.

Environment: HTTP_PORT, IMAPS_PORT, CERTIFICATE, USER_ADDRESS, PASSWORD, RELATED_SUBJECT,
BULK_MESSAGES.
"""

import os
import re
import urllib.parse
import urllib.request

from http_client import Client, csrf_of, message_link
from imap_client import imap

ADDRESS, PASSWORD = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]
RELATED_SUBJECT = os.environ["RELATED_SUBJECT"]
BULK = int(os.environ["BULK_MESSAGES"])
PNG = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF-1.4 tme\n"


def flags_by_subject(client, folder):
    """{subject: flags} of every message of `folder`, over IMAP."""
    typ, _ = client.select(f'"{folder}"', readonly=True)
    assert typ == "OK", folder
    typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    found = {}
    for item in data:
        if isinstance(item, tuple):
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode()
            subject = item[1].decode().split(":", 1)[1].strip()
            found[subject] = flags
    return found


def listed_names(client):
    """The folder names IMAP LIST gives."""
    typ, listed = client.list()
    assert typ == "OK", listed
    return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listed}


def folder_ids(page):
    """{name: id} from the folder list of a page."""
    return {name: int(number) for number, name in
            re.findall(r'<a href="/mail/(\d+)" data-mailbox="\d+"[^>]*>([^<(]+?)\s*(?:<|$)', page)}


def rows(page):
    """[(uid, subject)] of a list page, top to bottom."""
    found = []
    for row in re.findall(r'<tr[^>]*data-uid="(\d+)".*?</tr>', page, re.S):
        found.append(int(row))
    return found


def main():
    user = Client()
    page = user.login(ADDRESS, PASSWORD)
    csrf = csrf_of(page)
    folders = folder_ids(page)
    for name in ["INBOX", "Trash", "Junk", "Archive", "Sent", "Drafts"]:
        assert name in folders, (name, folders)
    inbox = folders["INBOX"]
    total = BULK + 1

    # Paging: 50 a page, newest first; every message once across the pages, in each order.
    assert f"Page 1 of {(total + 49) // 50}" in page, page
    first = rows(page)
    assert len(first) == 50 and first == sorted(first, reverse=True), first
    for sort in ["arrival", "arrival-oldest", "date", "date-oldest", "size", "size-smallest"]:
        seen = []
        for number in range(1, (total + 49) // 50 + 1):
            status, _, listing, _ = user.request(f"/mail/{inbox}?page={number}&sort={sort}")
            assert status == 200, (sort, number, status)
            seen.extend(rows(listing))
        assert len(seen) == total and len(set(seen)) == total, (sort, len(seen), len(set(seen)))
        if sort == "arrival-oldest":
            assert seen == sorted(seen), seen
    # Size order: the bulk messages grow with their number (see web.rs), largest first.
    listing = user.request(f"/mail/{inbox}?sort=size")[2]
    assert 'aria-sort="descending"' in listing, listing
    print("paging and sorting: every message once, in order")

    # Search: words anywhere (through the index or the messages), filters, folders.
    def search(**fields):
        status, _, page, _ = user.request("/search?" + urllib.parse.urlencode(fields))
        assert status == 200, (fields, status, page)
        return page, [subject for subject in re.findall(
            r'<td class="subject"><a href="/mail/\d+/\d+">([^<]*)</a>', page)]
    _, found = search(q="our logo")
    assert found == [RELATED_SUBJECT], found
    _, found = search(q="Bulk message 11")
    assert sorted(found) == sorted(
        ["Bulk message 11"] + [f"Bulk message {n}" for n in range(110, 120)]), found
    _, found = search(subject="bulk MESSAGE 11", since="2026-10-01")
    assert len(found) == 11, found
    _, found = search(**{"from": "dora@", "since": "2026-11-01"})
    assert found == [RELATED_SUBJECT], found
    _, found = search(**{"from": "dora", "before": "2026-11-01"})
    assert found == [], found
    _, found = search(to="alice", q="xxxxxxxxxx", folder=folders["Trash"])
    assert found == [], found
    page, found = search(q="message")
    assert len(found) == total and "Only the newest" not in page, len(found)
    page, _ = search(since="yesterday")
    assert "is not a date" in page, page
    status, _, _, _ = user.request("/search?q=x&folder=999999")
    assert status == 404, status
    print("search: words, filters, dates and folders")

    # The message with an inline image, an attachment and a remote image.
    link = message_link(user.request(f"/mail/{inbox}?sort=date")[2], RELATED_SUBJECT)
    mailbox_id, uid = link.split("/")[2:4]
    status, headers, message, _ = user.request(link)
    assert status == 200, status
    assert "img-src 'self';" in headers["Content-Security-Policy"], headers
    inline = re.search(rf'<img src="(/mail/{mailbox_id}/{uid}/part/\d+)"', message)
    assert inline, message
    assert "tracker.example" not in message, message
    assert "Remote images (1) are not shown" in message, message
    attachment = re.search(
        rf'href="(/mail/{mailbox_id}/{uid}/part/\d+)" download>\s*report.pdf', message)
    assert attachment, message
    for path, expected, media_type, disposition in [
            (inline.group(1), PNG, "image/png", "inline"),
            (attachment.group(1), PDF, "application/pdf", "attachment")]:
        request = urllib.request.Request(f"http://127.0.0.1:{os.environ['HTTP_PORT']}{path}")
        with user.following.open(request) as response:
            assert response.read() == expected, path
            assert response.headers["Content-Type"] == media_type, response.headers
            assert response.headers["Content-Disposition"].startswith(disposition), response.headers
            assert "sandbox" in response.headers["Content-Security-Policy"], response.headers
            if disposition == "attachment":
                assert 'filename="report.pdf"' in response.headers["Content-Disposition"]
    status, headers, shown, _ = user.request(link + "?images=show")
    assert "img-src 'self' https: http:" in headers["Content-Security-Policy"], headers
    assert "https://tracker.example/pixel.gif" in shown, shown
    for path in [f"/mail/{mailbox_id}/{uid}/part/0", f"/mail/{mailbox_id}/{uid}/part/999",
                 f"/mail/{mailbox_id}/{uid}/part/x", f"/mail/999999/{uid}/part/1"]:
        assert user.request(path)[0] == 404, path
    print("inline image and attachment served from their parts; remote images on request")

    # Opening marked it read; the web's flag changes show over IMAP.
    client = imap()
    assert "\\Seen" in flags_by_subject(client, "INBOX")[RELATED_SUBJECT]
    def act(mailbox, fields, expect=303):
        status, headers, page, _ = user.request(
            f"/mail/{mailbox}/act", [("csrf", csrf)] + fields, follow=False)
        assert status == expect, (fields, status, page)
        return headers
    headers = act(inbox, [("uid", uid), ("from", "message"), ("action", "unread")])
    assert headers["Location"] == link, headers
    act(inbox, [("action", f"flag:{uid}")])
    flags = flags_by_subject(client, "INBOX")[RELATED_SUBJECT]
    assert "\\Seen" not in flags and "\\Flagged" in flags, flags
    act(inbox, [("uid", uid), ("action", "unflag"), ("uid", first[0]), ("uid", first[1])])
    assert "\\Flagged" not in flags_by_subject(client, "INBOX")[RELATED_SUBJECT]
    # No token: refused, nothing changed.
    status, _, _, _ = user.request(f"/mail/{inbox}/act", {"uid": uid, "action": "flag"},
                                   follow=False)
    assert status == 403, status
    assert "\\Flagged" not in flags_by_subject(client, "INBOX")[RELATED_SUBJECT]
    print("read and flag changes seen over IMAP; a form without its token is refused")

    # Delete two bulk messages to Trash, restore one, delete the other for good.
    top = rows(user.request(f"/mail/{inbox}")[2])[:4]
    act(inbox, [("uid", top[0]), ("uid", top[1]), ("action", "delete")])
    trash = folders["Trash"]
    in_trash = rows(user.request(f"/mail/{trash}")[2])
    assert len(in_trash) == 2, in_trash
    assert len(flags_by_subject(client, "Trash")) == 2
    act(trash, [("uid", in_trash[0]), ("action", "restore")])
    act(trash, [("uid", in_trash[1]), ("action", "delete")])
    assert rows(user.request(f"/mail/{trash}")[2]) == []
    assert len(flags_by_subject(client, "INBOX")) == total - 1
    # Spam and back; archive; the Trash emptied.
    act(inbox, [("uid", top[2]), ("action", "spam")])
    junk_flags = list(flags_by_subject(client, "Junk").values())
    assert len(junk_flags) == 1 and "$Junk" in junk_flags[0], junk_flags
    junk_uid = rows(user.request(f"/mail/{folders['Junk']}")[2])[0]
    act(folders["Junk"], [("uid", junk_uid), ("action", "not-spam")])
    assert flags_by_subject(client, "Junk") == {}
    act(inbox, [("uid", top[3]), ("action", "archive")])
    assert len(flags_by_subject(client, "Archive")) == 1
    act(inbox, [("uid", rows(user.request(f"/mail/{inbox}")[2])[0]), ("action", "delete")])
    status, _, _, _ = user.request(f"/mail/{trash}/empty", {"csrf": csrf}, follow=False)
    assert status == 303, status
    assert flags_by_subject(client, "Trash") == {}
    status, _, page, _ = user.request(f"/mail/{inbox}/empty", {"csrf": csrf}, follow=False)
    assert status == 400 and "Only the Trash and Junk" in page, (status, page)
    assert len(flags_by_subject(client, "INBOX")) == total - 3
    print("delete, restore, spam, not spam, archive and empty Trash, seen over IMAP")

    # Folders: create, nest, rename, move into, delete; system folders stay.
    def post(path, fields, expect=303):
        status, headers, page, _ = user.request(path, [("csrf", csrf)] + fields, follow=False)
        assert status == expect, (path, fields, status, page)
        return page
    post("/folders/create", [("name", "Projects"), ("parent", "")])
    folders = folder_ids(user.request("/folders")[2])
    post("/folders/create", [("name", "2026"), ("parent", folders["Projects"])])
    page = post("/folders/create", [("name", "Projects"), ("parent", "")], expect=400)
    assert "exists already" in page, page
    post("/folders/create", [("name", "a/b"), ("parent", "")], expect=400)
    post("/folders/create", [("name", " "), ("parent", "")], expect=400)
    post(f"/folders/{folders['Projects']}/rename", [("name", "Work"), ("parent", "")])
    names = listed_names(client)
    assert "Work" in names and "Work/2026" in names and "Projects" not in names, names
    folders = folder_ids(user.request("/folders")[2])
    act(inbox, [("uid", rows(user.request(f"/mail/{inbox}")[2])[0]), ("action", "move"),
                ("target", folders["Work/2026"])])
    assert len(flags_by_subject(client, "Work/2026")) == 1
    post(f"/folders/{folders['Work/2026']}/delete", [])
    for system in ["INBOX", "Trash", "Sent"]:
        page = post(f"/folders/{folders[system]}/delete", [], expect=400)
        assert "system folder" in page, page
        post(f"/folders/{folders[system]}/rename", [("name", "x")], expect=400)
    names = listed_names(client)
    assert "Work/2026" not in names and "Work" in names and "INBOX" in names, names
    # Another account's folder, or none: 404.
    post("/folders/999999/delete", [], expect=404)
    act(999999, [("uid", 1), ("action", "read")], expect=404)
    act(inbox, [("uid", 1), ("action", "explode")], expect=400)
    act(inbox, [("uid", 1), ("action", "move"), ("target", 999999)], expect=404)
    client.logout()
    print("folders created, nested, renamed, moved into and deleted; system folders kept")


if __name__ == "__main__":
    main()
