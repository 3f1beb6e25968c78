"""Conversations in the webmail with Python's urllib, checked over IMAP with imaplib: a
folder listed by conversation (a reply joins its original by In-Reply-To or References),
a message shown with every message of its conversation in every folder (a reply APPENDed
to Sent over IMAP among them), and an action on a selected conversation taking all of its
messages in the folder.

Environment: HTTP_PORT, IMAPS_PORT, CERTIFICATE, USER_ADDRESS, PASSWORD.
"""

import imaplib
import os
import re
import time

from http_client import Client, csrf_of
from imap_client import imap

ADDRESS, PASSWORD = os.environ["USER_ADDRESS"], os.environ["PASSWORD"]


def subjects(client, folder):
    """The subjects of `folder`'s messages, over IMAP, in UID order."""
    typ, _ = client.select(f'"{folder}"', readonly=True)
    assert typ == "OK", folder
    typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    return [item[1].decode().split(":", 1)[1].strip() for item in data if isinstance(item, tuple)]


def rows(page):
    """The rows of a message list: (checkbox name, checkbox value, link, row html)."""
    found = []
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    for row in re.findall(r"<tr.*?</tr>", body, re.S):
        box = re.search(r'type="checkbox" name="(\w+)" value="(\d+)"', row)
        link = re.search(r'href="(/mail/\d+/\d+)"', row)
        assert box and link, row
        found.append((box.group(1), box.group(2), link.group(1), row))
    return found


def folder_ids(page):
    """{name: id} from the folder list of a page."""
    return {name.strip(): int(number) for number, name in
            re.findall(r'<a href="/mail/(\d+)" data-mailbox="\d+"[^>]*>([^<]+)', page)}


def main():
    # A reply to the conversation, as a client saves it in Sent: it joins by References.
    client = imap()
    reply = (b"From: " + ADDRESS.encode() + b"\r\nTo: bob@example.net\r\n"
             b"Subject: Re: Plans for the trip\r\nDate: Thu, 05 Nov 2026 10:00:00 +0000\r\n"
             b"Message-ID: <sent-1@example.org>\r\n"
             b"References: <plans-1@example.net> <plans-2@example.net> <plans-3@example.net>\r\n"
             b"\r\nCount me in.\r\n")
    typ, data = client.append('"Sent"', r"(\Seen)", imaplib.Time2Internaldate(time.time()), reply)
    assert typ == "OK", data
    assert subjects(client, "INBOX") == ["Plans for the trip", "Re: Plans for the trip",
                                         "Re: Plans for the trip", "Lunch on Friday"]

    web = Client()
    page = web.login(ADDRESS, PASSWORD)
    csrf = csrf_of(page)
    folders = folder_ids(page)
    inbox, archive, sent = folders["INBOX"], folders["Archive"], folders["Sent"]

    # The message view: one row per message, and a link to the conversation view.
    listed = rows(page)
    assert [name for name, _, _, _ in listed] == ["uid"] * 4, listed
    assert f'href="/mail/{inbox}?sort=conversations"' in page, page
    print("message view: 4 rows, a link to the conversation view")

    # The conversation view: the newest conversation first, the three messages in one row.
    status, _, page, _ = web.request(f"/mail/{inbox}?sort=conversations")
    assert status == 200, (status, page)
    assert "4 messages, 2 conversations" in page, page
    listed = rows(page)
    assert [name for name, _, _, _ in listed] == ["thread", "thread"], listed
    assert "Lunch on Friday" in listed[0][3] and "thread-count" not in listed[0][3], listed[0]
    plans = listed[1]
    assert "Plans for the trip" in plans[3], plans
    assert re.search(r'class="thread-count"[^>]*>\s*3', plans[3]), plans[3]
    assert 'class="unread"' in plans[3] or "unread" in plans[3].split(">", 1)[0], plans[3]
    thread_id = plans[1]
    print("conversation view: 2 conversations, newest first, 3 messages in one")

    # The newest message of the conversation lists all four, the one in Sent too.
    status, _, page, _ = web.request(plans[2])
    assert status == 200, (status, page)
    section = page.split('class="conversation"', 1)[1].split("</section>", 1)[0]
    links = re.findall(r'href="(/mail/\d+/\d+)"', section)
    assert len(links) == 4, section
    assert "Conversation (4 messages)" in section, section
    assert sum(1 for link in links if link.startswith(f"/mail/{sent}/")) == 1, links
    current = re.findall(r'href="(/mail/\d+/\d+)"\s+aria-current="page"', section)
    assert current == [plans[2]], (current, section)
    # Oldest first: the reply saved in Sent now comes last.
    assert links[-1].startswith(f"/mail/{sent}/"), links
    status, _, page, _ = web.request(listed[0][2])
    assert status == 200 and 'class="conversation"' not in page, page
    print("message page: its conversation's 4 messages across folders; none for a lone one")

    # Archiving the selected conversation takes its three messages, and only them.
    status, headers, page, _ = web.request(
        f"/mail/{inbox}/act",
        [("csrf", csrf), ("thread", thread_id), ("action", "archive"),
         ("page", "1"), ("sort", "conversations")],
        follow=False)
    assert status == 303, (status, page)
    assert headers["Location"] == f"/mail/{inbox}?page=1&sort=conversations", headers
    assert subjects(client, "INBOX") == ["Lunch on Friday"]
    assert sorted(subjects(client, "Archive")) == ["Plans for the trip", "Re: Plans for the trip",
                                                   "Re: Plans for the trip"]
    assert subjects(client, "Sent") == ["Re: Plans for the trip"]
    print("archive on a conversation: its 3 messages moved, seen over IMAP")

    # In the Archive it is still one conversation, and still four messages long.
    status, _, page, _ = web.request(f"/mail/{archive}?sort=conversations")
    listed = rows(page)
    assert len(listed) == 1 and listed[0][1] == thread_id, listed
    status, _, page, _ = web.request(listed[0][2])
    assert "Conversation (4 messages)" in page, page

    # A conversation that is not the account's (or not in the folder) moves nothing.
    for other in ["999999999", thread_id]:
        status, _, page, _ = web.request(
            f"/mail/{inbox}/act",
            [("csrf", csrf), ("thread", other), ("action", "delete")], follow=False)
        assert status == 303, (status, page)
    assert subjects(client, "INBOX") == ["Lunch on Friday"]
    status, _, page, _ = web.request(
        f"/mail/{inbox}/act", [("csrf", csrf), ("thread", "x"), ("action", "delete")])
    assert status == 404, (status, page)
    print("unknown or foreign conversations: nothing moved")
    client.logout()


if __name__ == "__main__":
    main()
