// The task board: REST for reading and changing tasks (/tasks), the `tasks` channel for
// seeing everyone's changes live (`{"type","task","actor","text"}`).

import { Auth, Session, Task, TaskStatus, UserSummary } from './api';
import { formatTime, h, parseTime, replaceChildren } from './dom';
import { messageOf, notify } from './ui';
import { userPicker, Users } from './users';

const COLUMNS: { status: TaskStatus; title: string }[] = [
  { status: 'todo', title: 'To do' },
  { status: 'in_progress', title: 'In progress' },
  { status: 'done', title: 'Done' },
];

/** The data of a publication on `tasks` (and on `notifications#<user>`). */
export interface TaskEvent {
  type: 'task.created' | 'task.updated' | 'task.assigned' | 'task.deleted' | string;
  task: Task;
  actor?: { id: string; name: string };
  text?: string;
}

export function isTaskEvent(data: unknown): data is TaskEvent {
  const event = data as TaskEvent | null;
  return !!event && typeof event === 'object' && typeof event.type === 'string' && !!event.task && typeof event.task.id === 'string';
}

export class TaskBoard {
  readonly element: HTMLElement;
  private tasks = new Map<string, Task>();
  /** Tasks deleted while a reload was in flight, so the reload does not bring them back. */
  private deleted = new Set<string>();
  private columns = new Map<TaskStatus, HTMLOListElement>();
  private counts = new Map<TaskStatus, HTMLElement>();
  private onlyMine = h('input', { type: 'checkbox', 'aria-label': 'Only tasks assigned to me' });
  private loadState = h('p', { class: 'board-state' });
  private highlight: string | null = null;
  /** Rendered cards by task id, reused while nothing they show changed (so an open picker
   *  or a focused control survives other tasks' updates). */
  private cards = new Map<string, { key: string; element: HTMLElement }>();
  /** Tasks changed live while a reload is in flight (the list may predate them). */
  private changedDuringReload: Set<string> | null = null;

  constructor(
    private auth: Auth,
    private session: Session,
    private users: Users,
  ) {
    users.onChange(() => this.render());
    this.onlyMine.addEventListener('change', () => this.render());
    const board = h(
      'div',
      { class: 'board' },
      ...COLUMNS.map(({ status, title }) => {
        const list = h('ol', { class: 'cards', 'aria-label': title });
        const count = h('span', { class: 'count' });
        this.columns.set(status, list);
        this.counts.set(status, count);
        return h('section', { class: `column column-${status}`, data: { status } }, h('h2', { class: 'column-title' }, title, ' ', count), list);
      }),
    );
    this.element = h(
      'div',
      { class: 'tasks' },
      this.createForm(),
      h('div', { class: 'board-toolbar' }, h('label', { class: 'toggle' }, this.onlyMine, ' Only mine'), this.loadState),
      board,
    );
  }

  private createForm(): HTMLElement {
    const title = h('input', { type: 'text', placeholder: 'What needs doing?', 'aria-label': 'Task title', maxlength: 200, required: true, autocomplete: 'off' });
    const description = h('textarea', { placeholder: 'Details (optional)', 'aria-label': 'Task description', rows: 2, maxlength: 5000 });
    let assignee: UserSummary | null = null;
    const chosen = h('span', { class: 'chosen' });
    const picker = userPicker(this.users, {
      placeholder: 'Assign to… (type a name)',
      label: 'Assignee',
      allowNobody: true,
      onPick: (user) => {
        assignee = user;
        chosen.textContent = user ? `Assigned to ${user.username}` : '';
      },
    });
    picker.input.addEventListener('input', () => {
      if (assignee && picker.input.value.trim() !== assignee.username) {
        assignee = null;
        chosen.textContent = '';
      }
    });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create task');
    return h(
      'form',
      {
        class: 'new-task panel',
        'aria-label': 'New task',
        on: {
          submit: async (event) => {
            event.preventDefault();
            if (!title.value.trim()) return;
            if (picker.input.value.trim() && !assignee) {
              notify('Pick the assignee from the list (or clear the field).', 'error');
              return;
            }
            submit.disabled = true;
            try {
              const task = await this.auth.createTask({
                title: title.value.trim(),
                description: description.value.trim() || undefined,
                assignee: assignee?.id,
              });
              this.upsert(task);
              title.value = '';
              description.value = '';
              assignee = null;
              chosen.textContent = '';
              picker.clear();
              notify(`Created "${task.title}"`);
            } catch (error) {
              notify(`Task not created: ${messageOf(error)}`, 'error');
            } finally {
              submit.disabled = false;
            }
          },
        },
      },
      h('h2', { class: 'panel-title' }, 'New task'),
      title,
      description,
      h('div', { class: 'assign-row' }, picker.element, chosen),
      submit,
    );
  }

  /** Loads every task over REST (on first subscribe, and whenever recovery was not possible). */
  async reload() {
    this.deleted.clear();
    const changed = new Set<string>();
    this.changedDuringReload = changed;
    this.loadState.textContent = 'Loading…';
    try {
      const tasks = await this.auth.listTasks();
      const fresh = new Map<string, Task>();
      for (const task of tasks) {
        if (this.deleted.has(task.id)) continue;
        const known = this.tasks.get(task.id);
        fresh.set(task.id, known && known.version > task.version ? known : task);
      }
      // Tasks created or changed live while the list was loading are newer than the list.
      for (const id of changed) {
        const task = this.tasks.get(id);
        if (task && !fresh.has(id) && !this.deleted.has(id)) fresh.set(id, task);
      }
      this.tasks = fresh;
      this.loadState.textContent = '';
      this.render();
    } catch (error) {
      this.loadState.textContent = `Could not load tasks: ${messageOf(error)}`;
    } finally {
      if (this.changedDuringReload === changed) this.changedDuringReload = null;
    }
  }

  /** Applies a publication of the `tasks` channel. */
  apply(event: TaskEvent) {
    if (event.actor) this.users.learn(event.actor.id, event.actor.name);
    if (event.type === 'task.deleted') {
      this.deleted.add(event.task.id);
      if (this.tasks.delete(event.task.id)) this.render();
      return;
    }
    this.upsert(event.task);
  }

  /** Scrolls to a task and flashes it. */
  show(taskId: string) {
    this.highlight = taskId;
    this.render();
    const card = this.element.querySelector<HTMLElement>(`[data-task-id="${CSS.escape(taskId)}"]`);
    card?.scrollIntoView({ block: 'center', behavior: 'smooth' });
  }

  private upsert(task: Task) {
    if (this.deleted.has(task.id)) return;
    const known = this.tasks.get(task.id);
    if (known && known.version >= task.version) return;
    this.changedDuringReload?.add(task.id);
    this.tasks.set(task.id, task);
    this.render();
  }

  private render() {
    const mine = this.onlyMine.checked;
    const sorted = [...this.tasks.values()]
      .filter((task) => !mine || task.assignee === this.session.userId)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1));
    const shown = new Set<string>();
    for (const { status } of COLUMNS) {
      const cards = sorted
        .filter((task) => task.status === status)
        .map((task) => {
          shown.add(task.id);
          return this.cachedCard(task);
        });
      replaceChildren(this.columns.get(status)!, ...(cards.length ? cards : [h('li', { class: 'cards-empty' }, 'Nothing here')]));
      this.counts.get(status)!.textContent = String(cards.length);
    }
    for (const id of this.cards.keys()) if (!shown.has(id)) this.cards.delete(id);
  }

  private cachedCard(task: Task): HTMLElement {
    const key = [task.version, task.status, this.users.nameOf(task.assignee), this.users.nameOf(task.created_by), this.highlight === task.id].join('|');
    const cached = this.cards.get(task.id);
    if (cached && cached.key === key) return cached.element;
    const element = this.card(task);
    this.cards.set(task.id, { key, element });
    return element;
  }

  private card(task: Task): HTMLElement {
    const status = h(
      'select',
      {
        'aria-label': `Status of ${task.title}`,
        on: {
          change: () => void this.patch(task, { status: status.value as TaskStatus }),
        },
      },
      ...COLUMNS.map((column) => h('option', { value: column.status, selected: column.status === task.status }, column.title)),
    );
    const assigneeName = task.assignee ? (task.assignee === this.session.userId ? 'you' : this.users.nameOf(task.assignee)) : '';
    const assign = h('div', { class: 'card-assign' });
    const reassignButton = h(
      'button',
      {
        type: 'button',
        class: 'link',
        on: {
          click: () => {
            const picker = userPicker(this.users, {
              placeholder: 'Type a name',
              label: `Assignee of ${task.title}`,
              allowNobody: true,
              onPick: (user) => {
                replaceChildren(assign);
                if ((user?.id ?? null) !== task.assignee) void this.patch(task, { assignee: user?.id ?? null });
              },
            });
            replaceChildren(assign, picker.element);
            picker.input.focus();
          },
        },
      },
      task.assignee ? 'Reassign' : 'Assign',
    );
    const created = parseTime(task.created_at);
    return h(
      'li',
      {
        class: `card${task.assignee === this.session.userId ? ' assigned-to-me' : ''}${this.highlight === task.id ? ' highlight' : ''}`,
        data: { taskId: task.id, status: task.status },
      },
      h('h3', { class: 'card-title' }, task.title),
      task.description ? h('p', { class: 'card-description' }, task.description) : null,
      h(
        'p',
        { class: 'card-meta' },
        'by ',
        h('span', { class: 'creator' }, task.created_by === this.session.userId ? 'you' : this.users.nameOf(task.created_by)),
        created ? h('time', { datetime: created.toISOString() }, ` · ${formatTime(created)}`) : null,
      ),
      h(
        'p',
        { class: 'card-assignee' },
        task.assignee ? h('span', null, 'Assigned to ', h('strong', { class: 'assignee' }, assigneeName)) : h('span', { class: 'unassigned' }, 'Unassigned'),
        ' ',
        reassignButton,
      ),
      assign,
      h(
        'div',
        { class: 'card-actions' },
        status,
        task.created_by === this.session.userId
          ? h('button', { type: 'button', class: 'danger link', 'aria-label': `Delete ${task.title}`, on: { click: () => void this.remove(task) } }, 'Delete')
          : null,
      ),
    );
  }

  private async patch(task: Task, patch: Partial<Pick<Task, 'status' | 'assignee'>>) {
    try {
      this.upsert(await this.auth.updateTask(task.id, patch));
    } catch (error) {
      notify(`"${task.title}" not changed: ${messageOf(error)}`, 'error');
      this.cards.delete(task.id);
      this.render();
    }
  }

  private async remove(task: Task) {
    if (!confirm(`Delete "${task.title}"?`)) return;
    try {
      await this.auth.deleteTask(task.id);
      this.deleted.add(task.id);
      this.tasks.delete(task.id);
      this.render();
    } catch (error) {
      notify(`"${task.title}" not deleted: ${messageOf(error)}`, 'error');
    }
  }
}
