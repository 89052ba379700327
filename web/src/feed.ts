// The notification feed: the user's own server-side channel `notifications#<user id>`
// (assignments) and new tasks from the `tasks` channel, with an unread count.
//
// What was read is remembered per channel as a stream position in localStorage, so the
// count survives reloads: an item is unread when its offset is past the channel's mark.

import type { PublicationContext } from 'centrifuge';

import { Session } from './api';
import { formatTime, h, parseTime, replaceChildren } from './dom';
import { isTaskEvent, TaskEvent } from './tasks';

interface Item {
  channel: string;
  offset: number;
  kind: string;
  text: string;
  taskId: string;
  time?: Date;
}

type Marks = Record<string, { epoch: string; offset: number }>;

export class Feed {
  readonly element: HTMLElement;
  private list = h('ol', { class: 'feed-list', 'aria-label': 'Notifications' });
  private empty = h('p', { class: 'feed-empty' }, 'Nothing yet. Assignments and new tasks show up here.');
  private items = new Map<string, Item>();
  private epochs = new Map<string, string>();
  private marks: Marks;
  private visible = false;
  /** Called with the unread count whenever it changes. */
  onUnread: (count: number) => void = () => {};
  /** Called when an item is opened. */
  onOpen: (taskId: string) => void = () => {};

  constructor(private session: Session) {
    this.marks = this.loadMarks();
    const markAll = h('button', { type: 'button', class: 'link', on: { click: () => this.markAllRead() } }, 'Mark all as read');
    this.element = h(
      'div',
      { class: 'feed panel' },
      h('header', { class: 'feed-header' }, h('h2', { class: 'panel-title' }, 'Notifications'), markAll),
      this.empty,
      this.list,
    );
  }

  /** The stream's epoch (from a subscribe or history reply): offsets are compared within it. */
  setEpoch(channel: string, epoch: string | undefined) {
    if (epoch) this.epochs.set(channel, epoch);
  }

  /** Adds a publication of `notifications#<me>` or `tasks`; other kinds are ignored. */
  add(channel: string, publication: Pick<PublicationContext, 'data' | 'offset'>) {
    if (!isTaskEvent(publication.data) || publication.offset === undefined) return;
    const event: TaskEvent = publication.data;
    // From the board channel only new tasks by others; one given to this user already comes
    // as an assignment on the user's own channel.
    if (channel === 'tasks' && (event.type !== 'task.created' || event.actor?.id === this.session.userId || event.task.assignee === this.session.userId)) return;
    const key = `${channel}/${publication.offset}`;
    if (this.items.has(key)) return;
    this.items.set(key, {
      channel,
      offset: publication.offset,
      kind: event.type,
      text: event.text || `${event.actor?.name ?? 'Someone'}: ${event.task.title}`,
      taskId: event.task.id,
      time: parseTime(event.task.updated_at),
    });
    if (this.visible && document.visibilityState === 'visible') this.markAllRead(false);
    this.render();
  }

  /** Whether the feed is on screen (then everything in it counts as read). */
  setVisible(visible: boolean) {
    this.visible = visible;
    if (visible) this.markAllRead();
  }

  markAllRead(render = true) {
    for (const item of this.items.values()) {
      const epoch = this.epochs.get(item.channel) ?? '';
      const mark = this.marks[item.channel];
      if (!mark || mark.epoch !== epoch || mark.offset < item.offset) this.marks[item.channel] = { epoch, offset: item.offset };
    }
    this.saveMarks();
    if (render) this.render();
  }

  private isUnread(item: Item): boolean {
    const mark = this.marks[item.channel];
    if (!mark) return true;
    if (mark.epoch !== (this.epochs.get(item.channel) ?? '')) return true;
    return item.offset > mark.offset;
  }

  private render() {
    const sorted = [...this.items.values()].sort((a, b) => (b.time?.getTime() ?? 0) - (a.time?.getTime() ?? 0) || b.offset - a.offset);
    let unread = 0;
    replaceChildren(
      this.list,
      ...sorted.map((item) => {
        const isUnread = this.isUnread(item);
        if (isUnread) unread += 1;
        return h(
          'li',
          { class: `feed-item ${item.kind.replace('.', '-')}${isUnread ? ' unread' : ''}` },
          h(
            'button',
            { type: 'button', class: 'feed-open', on: { click: () => this.onOpen(item.taskId) } },
            h('span', { class: 'feed-icon', 'aria-hidden': 'true' }, item.kind === 'task.assigned' ? '→' : '+'),
            h('span', { class: 'feed-text' }, item.text),
            item.time ? h('time', { class: 'time', datetime: item.time.toISOString() }, formatTime(item.time)) : null,
            isUnread ? h('span', { class: 'visually-hidden' }, ' (unread)') : null,
          ),
        );
      }),
    );
    this.empty.hidden = sorted.length > 0;
    this.onUnread(unread);
  }

  private loadMarks(): Marks {
    try {
      return (JSON.parse(localStorage.getItem(this.marksKey()) ?? '{}') as Marks) ?? {};
    } catch {
      return {};
    }
  }

  private saveMarks() {
    try {
      localStorage.setItem(this.marksKey(), JSON.stringify(this.marks));
    } catch {
      // not remembered
    }
  }

  private marksKey() {
    return `herald.read.${this.session.userId}`;
  }
}
