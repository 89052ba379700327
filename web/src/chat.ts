// Chat rooms: channel `chat:<room>`, publications `{"text","ts"}` with the author in the
// publication's info (`conn_info.name`), history on entry, presence with join/leave.
//
// Reconnects and recovery are the SDK's: after a reconnect it resubscribes with the last
// position and the gateway replays what was missed (`recovered`). Only when the gateway
// cannot recover (a new epoch) is the history loaded again.

import type { Centrifuge, ClientInfo, PublicationContext, Subscription } from 'centrifuge';

import { Session } from './api';
import { formatTime, h, parseTime, replaceChildren } from './dom';
import { messageOf, notify } from './ui';
import { Users } from './users';

/** Room names: what a channel name allows, minus the namespace separators. */
export const ROOM_PATTERN = /^[A-Za-z0-9_.@=-]{1,64}$/;
const MAX_TEXT = 2000;
const HISTORY_LIMIT = 100;
const ROOMS_KEY = 'herald.rooms';

interface Message {
  offset: number;
  author: string;
  userId: string;
  text: string;
  time?: Date;
}

function chatData(data: unknown): { text: string; ts?: unknown } {
  if (data && typeof data === 'object' && 'text' in data) {
    const record = data as { text: unknown; ts?: unknown };
    return { text: typeof record.text === 'string' ? record.text : JSON.stringify(record.text), ts: record.ts };
  }
  return { text: typeof data === 'string' ? data : JSON.stringify(data) };
}

function nameOf(info: ClientInfo | undefined): string {
  const connInfo = info?.connInfo as { name?: unknown } | undefined;
  return typeof connInfo?.name === 'string' ? connInfo.name : '';
}

export class ChatView {
  readonly element: HTMLElement;
  private roomList = h('ul', { class: 'room-list', 'aria-label': 'Rooms' });
  private title = h('h2', { class: 'room-title' });
  private roomState = h('span', { class: 'room-state' });
  private list = h('ol', { class: 'messages', 'aria-label': 'Messages', 'aria-live': 'polite' });
  private empty = h('p', { class: 'messages-empty' }, 'No messages yet. Say hello!');
  private online = h('ul', { class: 'online-list', 'aria-label': 'Online' });
  private onlineCount = h('span', { class: 'online-count', 'data-testid': 'online-count' });
  private input = h('input', { type: 'text', placeholder: 'Write a message…', 'aria-label': 'Message', maxlength: MAX_TEXT, autocomplete: 'off' });
  private sendButton = h('button', { type: 'submit', class: 'primary' }, 'Send');

  private room = '';
  private sub: Subscription | null = null;
  private messages: Message[] = [];
  private synthetic = -1;
  /** Client id → user, for everyone in the room. */
  private present = new Map<string, { userId: string; name: string }>();
  private rooms: string[];

  constructor(
    private client: Centrifuge,
    private session: Session,
    private users: Users,
  ) {
    this.rooms = loadRooms();
    const joinInput = h('input', { type: 'text', placeholder: 'Room name', 'aria-label': 'Room name', maxlength: 64, autocomplete: 'off' });
    const joinForm = h(
      'form',
      {
        class: 'join-room',
        on: {
          submit: (event) => {
            event.preventDefault();
            const name = joinInput.value.trim().replace(/^#/, '');
            if (!ROOM_PATTERN.test(name)) {
              notify('Room names use letters, digits and - _ . @ = (up to 64).', 'error');
              return;
            }
            joinInput.value = '';
            location.hash = `#/chat/${encodeURIComponent(name)}`;
          },
        },
      },
      joinInput,
      h('button', { type: 'submit' }, 'Join'),
    );
    const composer = h(
      'form',
      {
        class: 'composer',
        on: {
          submit: (event) => {
            event.preventDefault();
            void this.send();
          },
        },
      },
      this.input,
      this.sendButton,
    );
    this.element = h(
      'div',
      { class: 'chat' },
      h('aside', { class: 'rooms panel' }, h('h2', { class: 'panel-title' }, 'Rooms'), this.roomList, joinForm),
      h(
        'section',
        { class: 'room panel', 'aria-label': 'Room' },
        h('header', { class: 'room-header' }, this.title, this.roomState),
        h('div', { class: 'scroller' }, this.empty, this.list),
        composer,
      ),
      h('aside', { class: 'people panel' }, h('h2', { class: 'panel-title' }, 'Online ', this.onlineCount), this.online),
    );
  }

  /** Shows `room`, subscribing to it (and leaving the previous one). */
  enter(room: string) {
    if (room === this.room && this.sub) return;
    this.leave();
    this.room = room;
    if (!this.rooms.includes(room)) {
      this.rooms.push(room);
      saveRooms(this.rooms);
    }
    this.renderRooms();
    replaceChildren(this.title, h('span', { class: 'hash', 'aria-hidden': 'true' }, '#'), room);
    this.resetMessages();
    this.present.clear();
    this.renderPresence();

    const sub = this.client.newSubscription(`chat:${room}`, { joinLeave: true, recoverable: true, positioned: true });
    this.sub = sub;
    sub.on('subscribing', () => this.setRoomState('joining'));
    sub.on('subscribed', (ctx) => {
      this.setRoomState('');
      // For diagnostics (and the browser tests): whether the last subscribe recovered.
      this.element.dataset.recovered = String(ctx.wasRecovering && ctx.recovered);
      if (!(ctx.wasRecovering && ctx.recovered)) {
        this.resetMessages();
        void this.loadHistory(sub);
      }
      void this.loadPresence(sub);
    });
    sub.on('unsubscribed', (ctx) => {
      if (this.sub === sub && ctx.code !== 0) this.setRoomState('left');
    });
    sub.on('error', (ctx) => {
      if (this.sub === sub) notify(`#${room}: ${ctx.error.message}`, 'error');
    });
    sub.on('publication', (ctx) => {
      if (this.sub === sub) this.add(this.fromPublication(ctx, true));
    });
    sub.on('join', (ctx) => {
      if (this.sub !== sub) return;
      this.present.set(ctx.info.client, { userId: ctx.info.user, name: nameOf(ctx.info) || this.users.nameOf(ctx.info.user) });
      this.users.learn(ctx.info.user, nameOf(ctx.info));
      this.renderPresence();
    });
    sub.on('leave', (ctx) => {
      if (this.sub !== sub) return;
      this.present.delete(ctx.info.client);
      this.renderPresence();
    });
    sub.subscribe();
  }

  focus() {
    this.input.focus();
  }

  leave() {
    if (this.sub) {
      const sub = this.sub;
      this.sub = null;
      sub.removeAllListeners();
      this.client.removeSubscription(sub);
    }
    this.room = '';
  }

  private setRoomState(state: '' | 'joining' | 'left') {
    this.roomState.textContent = state === 'joining' ? 'joining…' : state === 'left' ? 'not subscribed' : '';
  }

  private async loadHistory(sub: Subscription) {
    try {
      const history = await sub.history({ limit: HISTORY_LIMIT, reverse: true });
      if (this.sub !== sub) return;
      for (const publication of history.publications) this.add(this.fromPublication(publication, false), false);
      this.scrollToEnd(true);
    } catch (error) {
      if (this.sub === sub) notify(`Could not load the history of #${this.room}: ${messageOf(error)}`, 'error');
    }
  }

  private async loadPresence(sub: Subscription) {
    try {
      const presence = await sub.presence();
      if (this.sub !== sub) return;
      this.present.clear();
      for (const [client, info] of Object.entries(presence.clients)) {
        this.users.learn(info.user, nameOf(info));
        this.present.set(client, { userId: info.user, name: nameOf(info) || this.users.nameOf(info.user) });
      }
      this.renderPresence();
    } catch (error) {
      if (this.sub === sub) notify(`Could not load who is online: ${messageOf(error)}`, 'error');
    }
  }

  private fromPublication(publication: PublicationContext, live: boolean): Message {
    const { text, ts } = chatData(publication.data);
    const userId = publication.info?.user ?? '';
    const author = nameOf(publication.info);
    this.users.learn(userId, author);
    return {
      offset: publication.offset ?? this.synthetic--,
      userId,
      author: author || (userId ? this.users.nameOf(userId) : 'server'),
      text,
      time: parseTime(ts) ?? (live ? new Date() : undefined),
    };
  }

  private async send() {
    const text = this.input.value;
    if (!text.trim() || !this.sub) return;
    if (text.length > MAX_TEXT) {
      notify(`Messages are at most ${MAX_TEXT} characters.`, 'error');
      return;
    }
    const sub = this.sub;
    this.sendButton.disabled = true;
    try {
      await sub.publish({ text, ts: new Date().toISOString() });
      if (this.sub === sub) this.input.value = '';
    } catch (error) {
      notify(`Not sent: ${messageOf(error)}`, 'error');
    } finally {
      this.sendButton.disabled = false;
      this.input.focus();
    }
  }

  private resetMessages() {
    this.messages = [];
    replaceChildren(this.list);
    this.empty.hidden = false;
  }

  /** Inserts a message in offset order; a message seen twice (history and live) shows once. */
  private add(message: Message, scroll = true) {
    // Publications without an offset (negative keys) go last, in arrival order.
    const key = (m: Message) => (m.offset < 0 ? Number.MAX_SAFE_INTEGER + m.offset : m.offset);
    let low = 0;
    let high = this.messages.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (key(this.messages[mid]!) < key(message)) low = mid + 1;
      else high = mid;
    }
    if (this.messages[low]?.offset === message.offset) return;
    const scroller = this.list.parentElement;
    const atEnd = !scroller || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const mine = message.userId === this.session.userId;
    const item = h(
      'li',
      { class: mine ? 'message mine' : 'message', data: { offset: String(message.offset) } },
      h(
        'div',
        { class: 'message-meta' },
        h('span', { class: 'author' }, message.author),
        message.time ? h('time', { class: 'time', datetime: message.time.toISOString(), title: message.time.toLocaleString() }, formatTime(message.time)) : null,
      ),
      h('p', { class: 'text' }, message.text),
    );
    this.list.insertBefore(item, this.list.children[low] ?? null);
    this.messages.splice(low, 0, message);
    this.empty.hidden = true;
    if (scroll) this.scrollToEnd(atEnd || mine);
  }

  private scrollToEnd(really: boolean) {
    const scroller = this.list.parentElement;
    if (really && scroller) scroller.scrollTop = scroller.scrollHeight;
  }

  private renderPresence() {
    const byUser = new Map<string, string>();
    for (const { userId, name } of this.present.values()) byUser.set(userId, name);
    const people = [...byUser.entries()].sort((a, b) => a[1].localeCompare(b[1]));
    replaceChildren(
      this.online,
      ...people.map(([userId, name]) =>
        h('li', { class: 'person', data: { userId } }, h('span', { class: 'dot', 'aria-hidden': 'true' }), name, userId === this.session.userId ? h('span', { class: 'you' }, ' (you)') : null),
      ),
    );
    this.onlineCount.textContent = String(people.length);
  }

  private renderRooms() {
    replaceChildren(
      this.roomList,
      ...this.rooms.map((room) =>
        h(
          'li',
          null,
          h(
            'a',
            { href: `#/chat/${encodeURIComponent(room)}`, class: room === this.room ? 'room-link active' : 'room-link', 'aria-current': room === this.room ? 'page' : null },
            h('span', { class: 'hash', 'aria-hidden': 'true' }, '#'),
            room,
          ),
          room !== 'lobby'
            ? h(
                'button',
                {
                  type: 'button',
                  class: 'forget',
                  title: `Forget #${room}`,
                  'aria-label': `Forget #${room}`,
                  on: {
                    click: () => {
                      this.rooms = this.rooms.filter((r) => r !== room);
                      saveRooms(this.rooms);
                      if (room === this.room) location.hash = '#/chat/lobby';
                      else this.renderRooms();
                    },
                  },
                },
                '×',
              )
            : null,
        ),
      ),
    );
  }
}

function loadRooms(): string[] {
  try {
    const rooms = JSON.parse(localStorage.getItem(ROOMS_KEY) ?? '[]') as unknown;
    if (Array.isArray(rooms)) {
      const valid = rooms.filter((room): room is string => typeof room === 'string' && ROOM_PATTERN.test(room));
      return valid.includes('lobby') ? valid : ['lobby', ...valid];
    }
  } catch {
    // fall through
  }
  return ['lobby'];
}

function saveRooms(rooms: string[]) {
  try {
    localStorage.setItem(ROOMS_KEY, JSON.stringify(rooms));
  } catch {
    // not remembered
  }
}
