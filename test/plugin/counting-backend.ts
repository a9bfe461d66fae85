/** An InMemoryBackend that counts its lifecycle calls (a real backend, observed, not a mock). */
import { InMemoryBackend, type InMemoryBackendOptions } from '../../lib/index.js'

export class CountingBackend extends InMemoryBackend {
  initializations = 0
  resets = 0
  closes = 0
  readonly #initDelayMs: number

  /** @param initDelayMs how long initialization takes, so concurrent callers overlap */
  constructor (options: InMemoryBackendOptions = {}, initDelayMs = 0) {
    super(options)
    this.#initDelayMs = initDelayMs
  }

  protected override async onInitialize (): Promise<void> {
    this.initializations++
    if (this.#initDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#initDelayMs))
    await super.onInitialize()
  }

  override async reset (): Promise<void> {
    this.resets++
    await super.reset()
  }

  protected override async onClose (): Promise<void> {
    this.closes++
    await super.onClose()
  }
}
