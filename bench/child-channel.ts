/**
 * A bench helper process (a load generator) and a request/answer channel to it over IPC: each
 * command carries a sequence number that its answer echoes. Messages without one (a generator's
 * periodic progress) go to `onUnsolicited`. If the process exits, every pending question is
 * answered with an `error`.
 */
import { type ChildProcess, fork } from 'node:child_process';

type Answer = { type: string };
type ErrorAnswer = { type: 'error'; message: string };
const isError = (answer: Answer): answer is ErrorAnswer => answer.type === 'error';

export class ChildChannel<Command, Reply extends Answer> {
  readonly child: ChildProcess;
  #seq = 0;
  readonly #waiting = new Map<number, (answer: Reply) => void>();

  /** `module`: the script to fork (run with tsx); `name`: how an exit is reported. */
  constructor(module: string, name: string, onUnsolicited: (message: Reply) => void = () => {}) {
    this.child = fork(module, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (message: { seq?: number; answer?: Reply } & Partial<Reply>) => {
      if (message.seq !== undefined) this.#waiting.get(message.seq)?.(message.answer as Reply);
      else onUnsolicited(message as Reply);
    });
    this.child.on('exit', (code) => {
      const exited: ErrorAnswer = { type: 'error', message: `${name} exited (${code})` };
      for (const resolve of this.#waiting.values()) resolve(exited as unknown as Reply);
    });
  }

  /** Sends `command`; resolves with the answer of type `expect`, rejects on an error or another type. */
  ask<T extends Reply['type']>(command: Command, expect: T): Promise<Extract<Reply, { type: T }>> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#waiting.set(seq, (answer) => {
        this.#waiting.delete(seq);
        if (answer.type === expect) resolve(answer as Extract<Reply, { type: T }>);
        else reject(new Error(isError(answer) ? answer.message : `unexpected ${answer.type}`));
      });
      this.child.send({ seq, command });
    });
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
