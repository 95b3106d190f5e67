import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom';

/** Distinguishable colours, one per series, in order. */
export const PALETTE = ['#2b6cb0', '#38a169', '#d69e2e', '#c53030', '#805ad5', '#319795', '#dd6b20', '#b83280', '#718096', '#2c7a7b'];

export interface Series {
  label: string;
  values: (number | null)[];
}

export interface ChartOptions {
  /** Cumulative areas, one band per series (e.g. running instances per endpoint). */
  stacked?: boolean;
  /** How a value reads on the axis and in the legend. */
  format?: (value: number) => string;
  height?: number;
  /** Counts: ticks on whole numbers only. */
  integer?: boolean;
}

/**
 * A time chart (x: Unix seconds) that keeps its uPlot instance across refreshes and only swaps
 * its data, so that a poll does not flicker or lose the cursor; rebuilt when the series change.
 */
export class TimeChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private labels = '';
  private readonly empty: HTMLElement;
  private readonly canvas: HTMLElement;
  private readonly resize = new ResizeObserver(() => this.plot?.setSize(this.size()));

  constructor(
    title: string,
    private readonly options: ChartOptions = {},
  ) {
    this.canvas = h('div', { class: 'chart-canvas' });
    this.empty = h('p', { class: 'muted chart-empty', hidden: true }, 'No data in this span.');
    this.el = h('figure', { class: 'chart' }, h('figcaption', {}, title), this.canvas, this.empty);
    this.resize.observe(this.canvas);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(280, this.canvas.clientWidth || 600), height: this.options.height ?? 220 };
  }

  /** The x range to show, in Unix seconds (e.g. the span asked for); null: the data's own. */
  private xRange: [number, number] | null = null;

  update(times: number[], series: Series[], xRange: [number, number] | null = null): void {
    this.xRange = xRange;
    this.empty.hidden = times.length > 0;
    const labels = series.map((s) => s.label).join('\u0000');
    const raw = series.map((s) => s.values);
    const shown = this.options.stacked ? stack(raw) : raw;
    // Stacked: the largest sum is drawn first and each lower one over it, so each band shows its own colour.
    const order = this.options.stacked ? series.map((_, i) => series.length - 1 - i) : series.map((_, i) => i);
    const data = [times, ...order.map((i) => shown[i])] as uPlot.AlignedData;
    if (this.plot && labels === this.labels) {
      this.rawValues = order.map((i) => raw[i]);
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.labels = labels;
    this.rawValues = order.map((i) => raw[i]);
    const format = this.options.format ?? ((v: number) => String(v));
    this.plot = new uPlot(
      {
        ...this.size(),
        scales: { x: { time: true, range: (_u, min, max) => this.xRange ?? [min, max] }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
        axes: [{}, { values: (_u, ticks) => ticks.map(format), size: 60, ...(this.options.integer ? { incrs: INTEGER_STEPS } : {}) }],
        series: [
          { label: 'time' },
          ...order.map((i) => ({
            label: series[i].label,
            stroke: PALETTE[i % PALETTE.length],
            fill: this.options.stacked ? `${PALETTE[i % PALETTE.length]}cc` : undefined,
            width: 1.5,
            points: { show: times.length < 50 },
            // The legend shows each series' own value, not the stacked sum.
            value: (_u: uPlot, _v: number | null, si: number, idx: number | null) => {
              const v = idx === null ? null : this.rawValues[si - 1]?.[idx];
              return v === null || v === undefined ? '—' : format(v);
            },
          })),
        ],
        legend: { live: true },
      },
      data,
      this.canvas,
    );
  }

  private rawValues: (number | null)[][] = [];

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

/** 1, 2, 5, 10, 20, 50, ... up to 5e15: tick steps for counts (no half job, no tenth of a byte). */
const INTEGER_STEPS = Array.from({ length: 16 }, (_, p) => [1, 2, 5].map((m) => m * 10 ** p)).flat();

/** Running sums across series, bucket by bucket. */
function stack(series: (number | null)[][]): number[][] {
  const sums: number[][] = [];
  series.forEach((values, s) => sums.push(values.map((v, i) => (v ?? 0) + (s > 0 ? sums[s - 1][i] : 0))));
  return sums;
}
